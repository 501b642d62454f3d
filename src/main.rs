use keyfence::{cli::Cli, command};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: keyfence::zero_alloc::ZeroOnFree = keyfence::zero_alloc::ZeroOnFree;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match command::run(cli) {
        Ok(command::Exit::Signal(sig)) => {
            command::die_by(sig);
            command::Exit::Signal(sig).into()
        }
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
