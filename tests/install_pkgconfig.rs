//! Installing like a C library: scripts/install.sh puts the header, the versioned shared library (with its
//! soname and symlinks), the static library and rateclust.pc into a temporary prefix; then the C example
//! builds with `pkg-config --cflags --libs rateclust` alone (dynamic and `--static`) and runs from there.

mod common;
use std::path::PathBuf;
use std::process::Command;

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn install_prefix_then_build_with_pkg_config_alone() {
    if Command::new("pkg-config").arg("--version").output().is_err() || Command::new("patchelf").arg("--version").output().is_err() {
        panic!("pkg-config and patchelf are required (scripts/test.sh installs them)");
    }
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install_prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let built = common::shared_library().parent().unwrap().to_path_buf();
    output(Command::new(common::repo().join("scripts/install.sh")).arg("--prefix").arg(&prefix).arg("--from").arg(&built));
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let soname = format!("librateclust.so.0.{}", version.split('.').nth(1).unwrap());
    assert!(prefix.join("include/rateclust.h").exists() && lib.join("librateclust.a").exists());
    assert_eq!(std::fs::read_link(lib.join("librateclust.so")).unwrap(), PathBuf::from(&soname));
    assert_eq!(std::fs::read_link(lib.join(&soname)).unwrap(), PathBuf::from(format!("librateclust.so.{version}")));
    let dynamic = output(Command::new("readelf").arg("-d").arg(lib.join(format!("librateclust.so.{version}"))));
    assert!(dynamic.contains(&format!("Library soname: [{soname}]")), "{dynamic}");

    let pc_path = lib.join("pkgconfig");
    let pkg = |args: &[&str]| -> Vec<String> {
        output(Command::new("pkg-config").args(args).arg("rateclust").env("PKG_CONFIG_PATH", &pc_path)).split_whitespace().map(String::from).collect()
    };
    assert_eq!(pkg(&["--modversion"]), [version]);
    let src = common::repo().join("examples/c/cluster.c");
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install_work");
    std::fs::create_dir_all(&work).unwrap();
    for (name, flags) in [("dyn", pkg(&["--cflags", "--libs"])), ("static", pkg(&["--static", "--cflags", "--libs"]))] {
        let exe = work.join(format!("cluster-pc-{name}"));
        let mut cc = Command::new("gcc");
        cc.arg("-std=c11").arg(&src).arg("-o").arg(&exe);
        if name == "static" {
            // Link the archive, not the shared library that sits beside it.
            cc.arg("-Wl,-Bstatic").args(flags.iter().filter(|f| f.as_str() == "-lrateclust")).arg("-Wl,-Bdynamic");
            cc.args(flags.iter().filter(|f| f.as_str() != "-lrateclust"));
        } else {
            cc.args(&flags);
        }
        cc.arg("-lm");
        output(&mut cc);
        let mut run = Command::new(&exe);
        run.arg(&work);
        if name == "dyn" {
            run.env("LD_LIBRARY_PATH", &lib);
            let needed = output(Command::new("readelf").arg("-d").arg(&exe));
            assert!(needed.contains(&format!("Shared library: [{soname}]")), "{needed}");
        }
        let stdout = output(&mut run);
        assert!(stdout.contains("metrics: acc"), "{name}: {stdout}");
    }
}
