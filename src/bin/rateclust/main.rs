//! The `rateclust` command-line tool. Subcommands live in their own files; this file only dispatches.

mod embed;

use std::ffi::OsString;

const USAGE: &str = "usage: rateclust <command> [options]\n\ncommands:\n  embed    CLIP embeddings of images or texts to .npy (rateclust embed --help)\n";

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        std::process::exit(2);
    }
    let command = args.remove(0);
    let result = match command.to_str() {
        Some("embed") => embed::run(args),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("unknown command {command:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("rateclust: {e}");
        std::process::exit(1);
    }
}
