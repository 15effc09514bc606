//! `.npy` reading/writing against files numpy wrote (tools/golden/cluster_core_goldens.py).

mod common;

use rateclust::io::npy::{parse_npy, read_npy, write_npy_f32, write_npy_i64, NpyData};
use rateclust::{Error, Status};

fn npy(name: &str) -> std::path::PathBuf {
    common::fixture(&format!("cluster_core/npy/{name}"))
}

/// The float64 values every float fixture was converted from.
fn base() -> Vec<f64> {
    std::fs::read_to_string(npy("base.txt"))
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn reads_every_dtype_and_version_numpy_writes() {
    let b = base();
    for (name, tol) in [("f16.npy", 1e-3), ("f32.npy", 1e-7), ("f64.npy", 0.0), ("f32_v2.npy", 1e-7), ("f32_v3.npy", 1e-7)] {
        let a = read_npy(&npy(name)).unwrap();
        assert_eq!(a.shape, vec![3, 4], "{name}");
        let (m, r, c) = a.to_f32_matrix(name).unwrap();
        assert_eq!((r, c), (3, 4));
        for (i, (&got, &want)) in m.iter().zip(&b).enumerate() {
            // Exactly numpy's rounding of the float64 values to the stored dtype.
            let expect = match name {
                "f16.npy" => half::f16::from_f64(want).to_f32(),
                _ => want as f32,
            };
            assert_eq!(got, expect, "{name}[{i}] (tolerance class {tol})");
        }
    }
    assert!(matches!(read_npy(&npy("f64.npy")).unwrap().data, NpyData::F64(ref v) if v == &b));
    let i32s = read_npy(&npy("i32.npy")).unwrap().to_i64_vec("i32").unwrap();
    assert_eq!(i32s, (-3..7).map(|x| x * 1000).collect::<Vec<i64>>());
    let i64s = read_npy(&npy("i64.npy")).unwrap().to_i64_vec("i64").unwrap();
    assert_eq!(i64s, (-3..7).map(|x| x * 1_000_000_007).collect::<Vec<i64>>());
}

fn format_err(r: rateclust::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e) => {
            assert!(matches!(e.status(), Status::Format | Status::NonFinite), "{e}");
            e.to_string()
        }
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn refuses_what_it_cannot_read_with_a_clear_message() {
    for (name, needle) in [
        ("bad_big_endian.npy", "big-endian"),
        ("bad_fortran.npy", "Fortran"),
        ("bad_object.npy", "object"),
        ("bad_uint8.npy", "unsupported dtype '|u1'"),
        ("bad_truncated.npy", "truncated"),
        ("bad_empty.npy", "empty file"),
    ] {
        let msg = format_err(read_npy(&npy(name)));
        assert!(msg.contains(needle) && msg.contains(name), "{name}: {msg}");
    }
    let a = read_npy(&npy("bad_3d.npy")).unwrap();
    assert!(format_err(a.to_f32_matrix("bad_3d.npy")).contains("2-d"));
    let a = read_npy(&npy("bad_nan.npy")).unwrap();
    let e = a.to_f32_matrix("bad_nan.npy").unwrap_err();
    assert_eq!(e.status(), Status::NonFinite);
    assert!(e.to_string().contains("bad_nan.npy[1]"), "{e}");
    // Wrong kind for the purpose: float labels, integer features.
    let f = read_npy(&npy("f32.npy")).unwrap();
    assert!(format_err(f.to_i64_vec("f32.npy")).contains("1-d"));
    let i = read_npy(&npy("i64.npy")).unwrap();
    assert!(format_err(i.to_f32_matrix("i64.npy")).contains("2-d"));
    assert!(format_err(parse_npy(b"not a numpy file at all", "junk")).contains("magic"));
    let missing = read_npy(std::path::Path::new("/nonexistent/x.npy")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }));
}

#[test]
fn writes_what_numpy_and_our_reader_read_back() {
    let dir = std::env::temp_dir().join(format!("rateclust_npy_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let p = dir.join("x.npy");
    write_npy_f32(&p, &data, &[4, 3]).unwrap();
    let a = read_npy(&p).unwrap();
    assert_eq!(a.to_f32_matrix("x").unwrap(), (data.clone(), 4, 3));
    // Byte-identical to the file numpy wrote for the same array.
    let b32: Vec<f32> = base().iter().map(|&x| x as f32).collect();
    let r = dir.join("base.npy");
    write_npy_f32(&r, &b32, &[3, 4]).unwrap();
    assert_eq!(std::fs::read(&r).unwrap(), std::fs::read(npy("f32.npy")).unwrap());
    let labels: Vec<i64> = vec![3, -1, 7, 0, 1 << 40];
    let q = dir.join("l.npy");
    write_npy_i64(&q, &labels, &[5]).unwrap();
    assert_eq!(read_npy(&q).unwrap().to_i64_vec("l").unwrap(), labels);
    assert!(write_npy_i64(&q, &labels, &[4]).is_err());
    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 3, "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
