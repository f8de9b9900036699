// Typed errors of atticadm: the shared UserError (src/cli/errors.ts). The one top-level catch in
// main.ts hands every error to the shared reporter.
export { UserError } from "../cli/errors.ts";
