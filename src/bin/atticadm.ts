#!/usr/bin/env node
// `atticadm`, the admin tool. Everything lives in src/admin; this file only runs it (on a
// supported Node: launch.ts).
import { launch } from "./launch.ts";

launch(
  "atticadm",
  () => import("../admin/main.ts").then(({ main }) => main(process.argv)),
  (code) => {
    process.exitCode = code;
  },
);
