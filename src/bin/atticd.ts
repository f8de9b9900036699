#!/usr/bin/env node
console.error("atticd: not implemented yet");
process.exit(1);
