#!/usr/bin/env node
// The npm entry point: finds keyfence's native binary in the platform package npm installed
// (an optional dependency selected by os/cpu; no install script) and runs it. Only a launcher:
// `keyfence shell-init`, `setup claude` and the Claude Code hook write the native binary's
// path, so a Node start-up is paid by this entry alone, never by each command keyfence wraps.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");

const PLATFORMS = {
  "linux x64": "@keyfence/linux-x64",
  "linux arm64": "@keyfence/linux-arm64",
};

function binaryPath() {
  const key = `${process.platform} ${process.arch}`;
  const pkg = PLATFORMS[key];
  if (!pkg) {
    process.stderr.write(
      `keyfence: error: no keyfence build for ${key} (there are builds for Linux on x64 and arm64)\n` +
        "hint: build it from source: cargo install keyfence\n",
    );
    process.exit(2);
  }
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", "keyfence");
  } catch {
    process.stderr.write(
      `keyfence: error: the package ${pkg}, which holds the keyfence binary for ${key}, is not installed\n` +
        "hint: reinstall without --omit=optional or --no-optional (npm i -g keyfence)\n",
    );
    process.exit(2);
  }
}

const child = spawn(binaryPath(), process.argv.slice(2), { stdio: "inherit" });

// A terminal's ^C and ^\ reach keyfence itself (same process group); keyfence decides what
// they do to the command it runs. Signals sent to this launcher alone are passed on.
for (const sig of ["SIGINT", "SIGQUIT"]) process.on(sig, () => {});
for (const sig of ["SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"]) {
  process.on(sig, () => child.kill(sig));
}

child.on("error", (e) => {
  process.stderr.write(`keyfence: error: cannot start ${e.path}: ${e.message}\n`);
  process.exit(126);
});

child.on("exit", (code, signal) => {
  if (signal) {
    // End as keyfence ended, so a shell sees the same death it would without this launcher.
    for (const sig of ["SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"]) {
      process.removeAllListeners(sig);
    }
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code);
});
