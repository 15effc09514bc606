//! `rateclust`: the command-line front end of the library.
//!
//! One clap derive `Args` struct per subcommand (one file each); their doc comments are the help text, so the
//! options, their defaults and their help have one source. Exit codes: 0 on success and for `--help` /
//! `--version`; 2 for every usage error (unknown option or command, missing option, unparsable value; clap's
//! message names the option); 1 when the library fails, printing `error: <message>` on stderr.

mod assign;
mod cluster;
mod common;
mod embed;
mod eval;
mod fit;
mod images;
mod label;
mod recluster;
mod select_k;
mod synth;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
.npy inputs: float16/32/64 (features) or int32/64 (labels), C order. --device auto|cpu|cuda[:N]: auto uses
CUDA when usable and otherwise the CPU. Run `rateclust <command> --help` for a command's options.";

/// Image clustering by rate reduction (CPP) on CLIP features.
#[derive(Parser)]
#[command(name = "rateclust", version, after_help = AFTER_HELP, subcommand_required = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Cluster(cluster::Args),
    Embed(embed::Args),
    Fit(fit::Args),
    Assign(assign::Args),
    SelectK(select_k::Args),
    Recluster(recluster::Args),
    Label(label::Args),
    Eval(eval::Args),
    Synth(synth::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    // `--model` names the CLIP model; where a command reads a fitted clusterer it is a deprecated alias.
    if matches!(cli.command, Command::Assign(_) | Command::SelectK(_) | Command::Recluster(_)) {
        common::warn_if_model_names_a_clusterer();
    }
    let result = match cli.command {
        Command::Cluster(a) => cluster::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Fit(a) => fit::run(a),
        Command::Assign(a) => assign::run(a),
        Command::SelectK(a) => select_k::run(a),
        Command::Recluster(a) => recluster::run(a),
        Command::Label(a) => label::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Synth(a) => synth::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(common::CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(common::CliError::Lib(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints clap's help, version or usage error and returns its exit code (0 for help and version, 2 for usage
/// errors). An unknown command keeps the message it always had, "unknown command 'NAME'".
fn clap_exit(e: clap::Error) -> ExitCode {
    let e = match (e.kind(), e.get(ContextKind::InvalidSubcommand)) {
        (ErrorKind::InvalidSubcommand, Some(ContextValue::String(name))) => {
            let mut msg = format!("unknown command '{name}'");
            if let Some(ContextValue::Strings(similar)) = e.get(ContextKind::SuggestedSubcommand) {
                msg += &format!(" (did you mean '{}'?)", similar.join("' or '"));
            }
            Cli::command().error(ErrorKind::InvalidSubcommand, msg)
        }
        _ => e,
    };
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
