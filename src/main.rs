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
            // The chain, each cause once: an error that shows its source in its own message
            // (`reading FILE: permission denied`) would otherwise show it twice.
            let mut message = err.to_string();
            for cause in err.chain().skip(1) {
                let cause = cause.to_string();
                if !message.ends_with(&cause) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            eprintln!("keyfence: error: {message}");
            command::Exit::Error.into()
        }
    }
}
