//! `rateclust eval`: accuracy (Hungarian), NMI and ARI of predicted labels against the truth, as JSON.

use crate::common::*;
use rateclust::cluster::algorithms::metrics::scores;
use std::path::PathBuf;

/// Accuracy (Hungarian matching), NMI and ARI of predicted labels against the truth, as one JSON object
///
/// Prints {"acc": …, "nmi": …, "ari": …} on stdout, one line.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// Predicted labels, n int32/int64 (rateclust assign)
    #[arg(long, value_name = "labels.npy")]
    pred: PathBuf,
    /// True labels, n int32/int64
    #[arg(long, value_name = "truth.npy")]
    truth: PathBuf,
    /// Print the metrics as one JSON object (what eval always prints; accepted so that scripts can say so)
    #[arg(long)]
    json: bool,
}

/// Runs `rateclust eval`.
pub fn run(args: Args) -> CliResult {
    let pred = read_labels(&args.pred)?;
    let truth = read_labels(&args.truth)?;
    let s = scores(&pred, &truth)?;
    println!("{{\"acc\": {:.6}, \"nmi\": {:.6}, \"ari\": {:.6}}}", s.acc, s.nmi, s.ari);
    Ok(())
}
