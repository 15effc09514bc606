//! `rateclust`: the command-line front end of the library.
//!
//! Subcommands (one file each): `embed`, `fit`, `assign`, `select-k`, `recluster`, `label`, `eval`, `synth`. Every failure prints
//! `error: <message>` on stderr and exits with a non-zero code (2 for usage errors, 1 otherwise).

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

use std::process::ExitCode;

const USAGE: &str = "usage: rateclust <command> [options]

commands:
  cluster   IMAGES_DIR --model CLIP_DIR --out OUT_DIR [--k K|auto --vocab FILE --device D --quiet]
            (the whole job: embed, fit, label, name; writes assignments.csv, clusters.json, report.html)
  embed     --model CLIP_DIR (--images DIR_OR_LIST | --texts FILE) --out X.npy   (CLIP embeddings)
  fit       --features X.npy --k K|auto --out model.safetensors [--k-max N --preset NAME --steps N
            --batch N --hidden N --zdim N --eta F --warmup N --lr F --seed N --head-restarts N
            --consensus-runs N --device auto|cpu|cuda[:N] --single-head --raw-input --assign-rule RULE
            --spectral-sample N]   (sizes, schedule, η and lr automatic unless given)
  assign    --model M.safetensors --features X.npy --out labels.npy [--confidence conf.npy]
  select-k  --model M.safetensors --features X.npy --candidates 5,8,10 [--device D]
  recluster --model M.safetensors --features X.npy --k K --out M2.safetensors   (new k, no retraining)
  label     --model CLIP_DIR --features EMB.npy --labels L.npy [--vocab FILE --template T --top N]
            (name each cluster with CLIP text: CPP's self-labeling vote)
  eval      --pred labels.npy --truth truth.npy
  synth     --out X.npy --labels-out y.npy [--n 2000 --dim 64 --k 5 --rank 4 --noise 0.05 --seed 1]

.npy inputs: float16/32/64 (features) or int32/64 (labels), C order. Run `rateclust <command> --help` for details.";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<std::ffi::OsString> = args.collect();
    let result = match cmd.to_string_lossy().as_ref() {
        "embed" => embed::run(rest),
        "fit" => fit::run(rest),
        "cluster" => cluster::run(rest),
        "assign" => assign::run(rest),
        "select-k" => select_k::run(rest),
        "eval" => eval::run(rest),
        "recluster" => recluster::run(rest),
        "label" => label::run(rest),
        "synth" => synth::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "-V" | "--version" => {
            println!("rateclust {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        other => Err(common::CliError::Usage(format!("unknown command '{other}'\n\n{USAGE}"))),
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
