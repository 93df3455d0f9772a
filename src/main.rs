//! `convlab`: parse the command line, run, and turn errors into one line and an exit status.

use clap::Parser;

fn main() {
    // A panic is a bug: say so in one line, without a backtrace, and exit with status 1.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal failure{place}: {message}");
    }));
    convlab::engine::keep_freed_memory_for_reuse();
    let cli = convlab::cli::Cli::parse();
    let code = match std::panic::catch_unwind(|| convlab::cli::run(cli)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            if e.is_printed_here() {
                eprintln!("error: {e}");
            }
            e.exit_code()
        }
        Err(_) => 1,
    };
    std::process::exit(code);
}
