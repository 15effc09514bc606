//! The `rateclust` command line's usage contract, for every subcommand: `--help` exits 0, lists the options
//! and shows defaults; an unknown option, a missing required option and an unparsable value each exit 2 with
//! an `error:` message naming the option; no subcommand exits 2; `--version` prints the version. None of
//! these reads a file: parsing fails (or help is printed) before any work starts. `--model` means the CLIP
//! model; on assign, select-k and recluster it is a hidden, deprecated spelling of `--clusterer` (the one
//! test here that runs a command end to end checks that it still works and warns).

use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rateclust")).args(args).output().expect("running rateclust")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `args`, expects exit code 2 and an `error:` message on stderr mentioning every needle.
fn usage_error(args: &[&str], needles: &[&str]) {
    let o = cli(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "rateclust {args:?} should be a usage error (exit 2):\n{err}");
    assert!(err.starts_with("error: "), "rateclust {args:?}: stderr should start with 'error: ':\n{err}");
    for n in needles {
        assert!(err.contains(n), "rateclust {args:?}: message should mention {n:?}:\n{err}");
    }
    assert!(o.stdout.is_empty(), "rateclust {args:?}: nothing on stdout for a usage error:\n{}", text(&o.stdout));
}

struct Case {
    command: &'static str,
    /// Options (and positionals) the help must mention: those of the help text before clap.
    options: &'static [&'static str],
    /// Whether some option has a constant default, shown as `[default: …]`.
    has_default: bool,
    /// A command line that lacks one required option, and that option.
    missing: (&'static [&'static str], &'static str),
    /// A command line with one unparsable value, and its option.
    bad_value: (&'static [&'static str], &'static str),
}

const CASES: &[Case] = &[
    Case {
        command: "cluster",
        options: &["IMAGES_DIR", "--model", "--out", "--k", "--k-max", "--vocab", "--template", "--seed", "--batch", "--device", "--quiet"],
        has_default: true,
        missing: (&["cluster", "photos", "--model", "clip"], "--out"),
        bad_value: (&["cluster", "photos", "--model", "clip", "--out", "o", "--k", "many"], "--k"),
    },
    Case {
        command: "embed",
        options: &["--model", "--images", "--texts", "--out", "--batch", "--device", "--no-normalize", "--pooled", "--quiet"],
        has_default: true,
        missing: (&["embed", "--texts", "t.txt", "--out", "x.npy"], "--model"),
        bad_value: (&["embed", "--model", "clip", "--texts", "t.txt", "--out", "x.npy", "--batch", "0"], "--batch"),
    },
    Case {
        command: "fit",
        options: &[
            "--features", "--k", "--out", "--k-max", "--preset", "--steps", "--batch", "--hidden", "--zdim", "--eta", "--warmup", "--lr",
            "--seed", "--head-restarts", "--consensus-runs", "--device", "--single-head", "--raw-input", "--assign-rule",
            "--spectral-sample", "--sample-clustering", "--quiet",
        ],
        has_default: true,
        missing: (&["fit", "--k", "2", "--out", "m.safetensors"], "--features"),
        bad_value: (&["fit", "--features", "x.npy", "--k", "2", "--out", "m.safetensors", "--assign-rule", "nearest"], "--assign-rule"),
    },
    Case {
        command: "assign",
        options: &["--clusterer", "--features", "--out", "--confidence", "--scores", "--device", "--quiet"],
        has_default: true,
        missing: (&["assign", "--clusterer", "m.safetensors", "--features", "x.npy"], "--out"),
        bad_value: (&["assign", "--clusterer", "m.safetensors", "--features", "x.npy", "--out", "l.npy", "--device", "tpu"], "--device"),
    },
    Case {
        command: "select-k",
        options: &["--clusterer", "--features", "--candidates", "--device", "--quiet"],
        has_default: true,
        missing: (&["select-k", "--clusterer", "m.safetensors", "--features", "x.npy"], "--candidates"),
        bad_value: (&["select-k", "--clusterer", "m.safetensors", "--features", "x.npy", "--candidates", "5,x,10"], "--candidates"),
    },
    Case {
        command: "recluster",
        options: &["--clusterer", "--features", "--k", "--out", "--device", "--quiet"],
        has_default: true,
        missing: (&["recluster", "--clusterer", "m.safetensors", "--features", "x.npy", "--out", "m2.safetensors"], "--k"),
        bad_value: (&["recluster", "--clusterer", "m.safetensors", "--features", "x.npy", "--out", "m2.safetensors", "--k", "auto"], "--k"),
    },
    Case {
        command: "label",
        options: &["--model", "--features", "--labels", "--vocab", "--template", "--top", "--device", "--quiet"],
        has_default: true,
        missing: (&["label", "--model", "clip", "--features", "e.npy"], "--labels"),
        bad_value: (&["label", "--model", "clip", "--features", "e.npy", "--labels", "l.npy", "--top", "-1"], "--top"),
    },
    Case {
        command: "eval",
        options: &["--pred", "--truth", "--json"],
        // Two required files and a flag: nothing with a default.
        has_default: false,
        missing: (&["eval", "--pred", "l.npy"], "--truth"),
        bad_value: (&["eval", "--pred", "l.npy", "--truth", "y.npy", "--json=yes"], "--json"),
    },
    Case {
        command: "synth",
        options: &["--out", "--labels-out", "--n", "--dim", "--k", "--rank", "--noise", "--seed", "--quiet"],
        has_default: true,
        missing: (&["synth", "--out", "x.npy"], "--labels-out"),
        bad_value: (&["synth", "--out", "x.npy", "--labels-out", "y.npy", "--noise", "loud"], "--noise"),
    },
];

#[test]
fn every_subcommand_has_help_with_its_options_and_defaults() {
    for c in CASES {
        for flag in ["--help", "-h"] {
            let o = cli(&[c.command, flag]);
            let help = text(&o.stdout);
            assert_eq!(o.status.code(), Some(0), "rateclust {} {flag}: {}", c.command, text(&o.stderr));
            assert!(help.contains(&format!("Usage: rateclust {}", c.command)), "{} {flag}:\n{help}", c.command);
            for opt in c.options {
                assert!(help.contains(opt), "rateclust {} {flag} should mention {opt}:\n{help}", c.command);
            }
            if c.has_default {
                assert!(help.contains("[default: "), "rateclust {} {flag} should show defaults:\n{help}", c.command);
            }
        }
        // `rateclust help COMMAND` is the same page.
        let o = cli(&["help", c.command]);
        assert_eq!(o.status.code(), Some(0));
        assert!(text(&o.stdout).contains(c.options[0]));
    }
}

#[test]
fn defaults_are_shown_constant_or_automatic() {
    let help = |c: &str| text(&cli(&[c, "--help"]).stdout);
    let fit = help("fit");
    for shown in ["[default: 42]", "[default: auto]", "[default: subspace]", "[default: spectral]", "[default: automatic"] {
        assert!(fit.contains(shown), "fit --help should show {shown}:\n{fit}");
    }
    assert!(help("cluster").contains("[default: auto]"));
    assert!(help("embed").contains("[default: 32]"));
    let synth = help("synth");
    assert!(synth.contains("[default: 2000]") && synth.contains("[default: 0.05]"), "{synth}");
}

#[test]
fn unknown_options_are_usage_errors_naming_the_option() {
    for c in CASES {
        usage_error(&[c.command, "--no-such-option"], &["--no-such-option"]);
    }
}

#[test]
fn missing_required_options_are_usage_errors_naming_the_option() {
    for c in CASES {
        usage_error(c.missing.0, &[c.missing.1]);
    }
    // cluster's folder is positional.
    usage_error(&["cluster", "--model", "clip", "--out", "o"], &["IMAGES_DIR"]);
    // embed needs one input, and only one.
    usage_error(&["embed", "--model", "clip", "--out", "x.npy"], &["--images or --texts"]);
    usage_error(&["embed", "--model", "clip", "--out", "x.npy", "--images", "d", "--texts", "t"], &["--images", "--texts"]);
}

#[test]
fn unparsable_values_are_usage_errors_naming_the_option() {
    for c in CASES {
        usage_error(c.bad_value.0, &[c.bad_value.1]);
    }
    // The library's own message comes with the option's name.
    usage_error(&["fit", "--features", "x.npy", "--k", "2", "--out", "m", "--device", "tpu"], &["--device", "unknown device 'tpu'"]);
    usage_error(&["fit", "--features", "x.npy", "--k", "2", "--out", "m", "--sample-clustering", "dbscan"], &["--sample-clustering", "dbscan"]);
    usage_error(&["fit", "--features", "x.npy", "--k", "2", "--out", "m", "--preset", "cifar100"], &["--preset", "cifar100"]);
    usage_error(&["fit", "--features", "x.npy", "--k", "two", "--out", "m"], &["--k", "'two' is not a number or 'auto'"]);
    // A negative number is a bad value of its option, not an unknown option.
    usage_error(&["synth", "--out", "x.npy", "--labels-out", "y.npy", "--n", "-3"], &["--n"]);
}

#[test]
fn clusterer_commands_name_the_file_clusterer_and_hide_model() {
    for command in ["assign", "select-k", "recluster"] {
        let o = cli(&[command, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let help = text(&o.stdout);
        assert!(help.contains("--clusterer <FILE>"), "{command} --help should show --clusterer:\n{help}");
        assert!(!help.contains("--model"), "{command} --help should not show the deprecated --model:\n{help}");
        let usage = help.lines().find(|l| l.starts_with("Usage: ")).unwrap_or_default();
        assert!(usage.contains("--clusterer <FILE>"), "{command}: --clusterer is required, so in the usage line: {usage}");
    }
    usage_error(&["assign", "--features", "x.npy", "--out", "l.npy"], &["--clusterer"]);
    // fit's --out is the clusterer too.
    let fit = text(&cli(&["fit", "--help"]).stdout);
    assert!(fit.contains("--clusterer"), "fit --help should say its --out is read with --clusterer:\n{fit}");
}

#[test]
fn assign_model_still_works_as_a_deprecated_alias() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (x, y, m) = (p("x.npy"), p("y.npy"), p("m.safetensors"));
    let run_ok = |args: &[&str]| {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(0), "rateclust {args:?}:\n{}", text(&o.stderr));
        o
    };
    run_ok(&["synth", "--out", &x, "--labels-out", &y, "--n", "200", "--dim", "16", "--k", "2", "--rank", "2", "--quiet"]);
    run_ok(&[
        "fit", "--features", &x, "--k", "2", "--out", &m, "--hidden", "32", "--zdim", "8", "--batch", "100", "--steps", "4", "--warmup",
        "1", "--consensus-runs", "0", "--device", "cpu", "--quiet",
    ]);
    const WARNING: &str = "rateclust: --model for a clusterer file is deprecated; use --clusterer";
    let (old, new) = (p("old.npy"), p("new.npy"));
    let o = run_ok(&["assign", "--model", &m, "--features", &x, "--out", &old, "--device", "cpu", "--quiet"]);
    let err = text(&o.stderr);
    assert_eq!(err.matches(WARNING).count(), 1, "assign --model should warn once on stderr:\n{err}");
    assert!(!text(&o.stdout).contains("deprecated"), "the warning goes to stderr only");
    let o = run_ok(&["assign", "--clusterer", &m, "--features", &x, "--out", &new, "--device", "cpu", "--quiet"]);
    assert!(!text(&o.stderr).contains("deprecated"), "--clusterer does not warn:\n{}", text(&o.stderr));
    // The same clusterer, so the same labels.
    assert_eq!(std::fs::read(&old).unwrap(), std::fs::read(&new).unwrap());
}

#[test]
fn no_subcommand_or_an_unknown_one_is_a_usage_error() {
    let o = cli(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("Usage: rateclust"), "{}", text(&o.stderr));
    usage_error(&["nonsense"], &["unknown command 'nonsense'"]);
    usage_error(&["fitt"], &["unknown command 'fitt'", "fit"]);
}

#[test]
fn top_level_help_lists_the_commands_and_version_prints_the_version() {
    for flag in ["--help", "-h", "help"] {
        let o = cli(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        let help = text(&o.stdout);
        for c in CASES {
            let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{} ", c.command)));
            let line = line.unwrap_or_else(|| panic!("rateclust {flag} should list {}:\n{help}", c.command));
            assert!(line.len() > c.command.len() + 10, "{} should have a one-line description: {line:?}", c.command);
        }
    }
    for flag in ["--version", "-V"] {
        let o = cli(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(text(&o.stdout).trim(), format!("rateclust {}", env!("CARGO_PKG_VERSION")));
    }
}
