use clap::Parser;
use keyfence::{cli::Cli, command};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: keyfence::zero_alloc::ZeroOnFree = keyfence::zero_alloc::ZeroOnFree;

fn main() -> ExitCode {
    // Building the detector's automata is about half of `keyfence run`'s own start-up (budget:
    // 1 ms, DESIGN.md §4). On a second core it overlaps with parsing the command line and
    // reading the profiles; whoever needs the detector first waits for it (a `OnceLock`).
    if needs_detector() {
        std::thread::spawn(|| {
            keyfence::detect::detector();
        });
    }
    let cli = Cli::parse();
    match command::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            // A closed pipe (`keyfence audit | head`) is not a failure, as in ripgrep.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("keyfence: error: {err:#}");
            command::Exit::Error.into()
        }
    }
}

/// Whether the subcommand (the first argument that is not an option) classifies secrets.
fn needs_detector() -> bool {
    let sub = std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'));
    sub.is_some_and(|s| {
        ["run", "audit", "scan", "ps", "fix", "setup"].contains(&&*s.to_string_lossy())
    })
}
