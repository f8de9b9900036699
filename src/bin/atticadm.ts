#!/usr/bin/env node
// `atticadm`, the admin tool. Everything lives in src/admin; this file only runs it.
import { main } from "../admin/main.ts";

process.exitCode = await main(process.argv);
