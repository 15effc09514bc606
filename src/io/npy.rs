//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): read little-endian C-order arrays of
//! `<f2 <f4 <f8 <i4 <i8`, write `<f4` and `<i8`.
//!
//! Mirrors the layout numpy's `numpy/lib/format.py` writes: the magic `\x93NUMPY`, a major/minor
//! version byte pair, a header length (u16 in 1.0, u32 in 2.0/3.0), then a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a final `\n`,
//! then the raw data. Anything we cannot read faithfully (big-endian, Fortran order, object or structured
//! dtypes, a short data section) is refused with an [`Error::Format`] naming the file and the problem,
//! rather than guessed at.
//!
//! Hand-written rather than built on the `npyz` crate: see "Why `io/npy.rs` is hand-written" in `docs/design.md`.

use crate::error::{check_finite, Error, Result};
use half::f16;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element data of an array, in the dtype the file stored.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl NpyData {
    pub fn len(&self) -> usize {
        match self {
            NpyData::F16(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy descr string (`<f4`, ...).
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::F16(_) => "<f2",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::I32(_) => "<i4",
            NpyData::I64(_) => "<i8",
        }
    }
}

/// A C-order array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// Reads a `.npy` file. Errors name `path`.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, &path.display().to_string())
}

fn fmt_err(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::Format(format!("{what}: {msg}"))
}

/// Parses the bytes of a `.npy` file; `what` names the source in error messages (usually the path).
pub fn parse_npy(bytes: &[u8], what: &str) -> Result<NpyArray> {
    if bytes.is_empty() {
        return Err(fmt_err(what, "empty file, not a .npy array"));
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(fmt_err(what, "not a .npy file (missing the \\x93NUMPY magic)"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(fmt_err(what, "truncated .npy header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err(fmt_err(what, format!("unsupported .npy format version {major}.{minor} (1.0, 2.0, 3.0 are)"))),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| fmt_err(what, "truncated .npy header"))?;
    // Version 1.0 and 2.0 headers are latin-1; 3.0 is UTF-8. The dict literal we accept is ASCII either way.
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| fmt_err(what, "the .npy header is not ASCII/UTF-8 text"))?;
    let h = parse_header(header).map_err(|m| fmt_err(what, m))?;
    if h.fortran_order {
        return Err(fmt_err(what, "Fortran-order (column-major) arrays are not supported; save with C order (np.ascontiguousarray)"));
    }
    let elem = match h.descr.as_str() {
        "<f2" => 2,
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        d if d.starts_with('>') => {
            return Err(fmt_err(what, format!("big-endian dtype '{d}' is not supported; convert with arr.astype(arr.dtype.newbyteorder('<'))")))
        }
        "|O" | "<O" | ">O" => return Err(fmt_err(what, "object arrays (dtype 'O') are not supported")),
        d => {
            return Err(fmt_err(what, format!("unsupported dtype '{d}' (supported: float16, float32, float64, int32, int64, little-endian)")))
        }
    };
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| fmt_err(what, format!("shape {:?} overflows", h.shape)))?;
    let nbytes = count.checked_mul(elem).ok_or_else(|| fmt_err(what, format!("shape {:?} overflows", h.shape)))?;
    let body = &bytes[data_start..];
    if body.len() < nbytes {
        return Err(fmt_err(
            what,
            format!("truncated data: shape {:?} of {} needs {nbytes} bytes, the file has {}", h.shape, h.descr, body.len()),
        ));
    }
    if body.len() > nbytes {
        return Err(fmt_err(
            what,
            format!("{} trailing bytes after the data of shape {:?} ({})", body.len() - nbytes, h.shape, h.descr),
        ));
    }
    let body = &body[..nbytes];
    fn chunks<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N).map(|c| f(c.try_into().unwrap())).collect()
    }
    let data = match h.descr.as_str() {
        "<f2" => NpyData::F16(chunks::<2, _>(body, f16::from_le_bytes)),
        "<f4" => NpyData::F32(chunks::<4, _>(body, f32::from_le_bytes)),
        "<f8" => NpyData::F64(chunks::<8, _>(body, f64::from_le_bytes)),
        "<i4" => NpyData::I32(chunks::<4, _>(body, i32::from_le_bytes)),
        "<i8" => NpyData::I64(chunks::<8, _>(body, i64::from_le_bytes)),
        _ => unreachable!("descr checked above"),
    };
    Ok(NpyArray { shape: h.shape, data })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses numpy's header dict literal. Only the three keys numpy writes are accepted, each exactly once.
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let mut p = Lexer { s: s.trim_end().as_bytes(), i: 0 };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured dtypes (a list descr) are not supported".into());
                }
                descr = Some(p.string()?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            k => return Err(format!("unexpected key '{k}' in the .npy header")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("the .npy header has no 'descr'")?,
        fortran_order: fortran.ok_or("the .npy header has no 'fortran_order'")?,
        shape: shape.ok_or("the .npy header has no 'shape'")?,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("malformed .npy header: expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = self.peek().filter(|&c| c == b'\'' || c == b'"').ok_or_else(|| format!("malformed .npy header: expected a string at byte {}", self.i))?;
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != q) {
            self.i += 1;
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.expect(q)?;
        Ok(out)
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("malformed .npy header: expected True or False at byte {}", self.i))
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // Python 2 era files may write `3L`.
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            let _ = self.eat(b'L');
            dims.push(digits.parse::<usize>().map_err(|_| format!("malformed .npy header: bad dimension at byte {start}"))?);
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

impl NpyArray {
    /// A rank-2 float array as a row-major f32 matrix `(data, rows, cols)`, for feature matrices.
    /// Refuses integer dtypes, other ranks, empty arrays and NaN/Inf (also values that overflow f32).
    pub fn to_f32_matrix(&self, what: &str) -> Result<(Vec<f32>, usize, usize)> {
        if self.shape.len() != 2 {
            return Err(fmt_err(what, format!("expected a 2-d array (n × d), got shape {:?}", self.shape)));
        }
        let (n, d) = (self.shape[0], self.shape[1]);
        if n == 0 || d == 0 {
            return Err(fmt_err(what, format!("empty array of shape ({n}, {d})")));
        }
        let v: Vec<f32> = match &self.data {
            NpyData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => {
                check_finite(what, v)?;
                v.iter().map(|&x| x as f32).collect()
            }
            other => {
                return Err(fmt_err(what, format!("expected a float array (float16/32/64), got dtype {}", other.descr())))
            }
        };
        check_finite(what, &v)?;
        Ok((v, n, d))
    }

    /// A rank-1 integer array as i64, for label vectors. Refuses float dtypes, other ranks and empty arrays.
    pub fn to_i64_vec(&self, what: &str) -> Result<Vec<i64>> {
        if self.shape.len() != 1 {
            return Err(fmt_err(what, format!("expected a 1-d array of labels, got shape {:?}", self.shape)));
        }
        if self.shape[0] == 0 {
            return Err(fmt_err(what, "empty label array"));
        }
        match &self.data {
            NpyData::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            NpyData::I64(v) => Ok(v.clone()),
            other => Err(fmt_err(what, format!("expected an integer array (int32/int64), got dtype {}", other.descr()))),
        }
    }
}

/// The bytes of a version-1.0 `.npy` file (version 2.0 if the header would not fit a u16 length).
fn encode(descr: &str, shape: &[usize], payload_len: usize) -> Vec<u8> {
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    // numpy pads magic + length + header to a multiple of 64 bytes and ends the header with '\n'.
    let (prefix, version) = if dict.len() + 1 + 10 < 65536 { (10, 1u8) } else { (12, 2u8) };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let hlen = total - prefix;
    let mut out = Vec::with_capacity(total + payload_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(hlen as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(hlen as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

fn check_shape(path: &Path, len: usize, shape: &[usize]) -> Result<()> {
    let count: Option<usize> = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
    if count != Some(len) {
        return Err(crate::invalid_arg!("writing {}: shape {:?} does not match {} values", path.display(), shape, len));
    }
    Ok(())
}

/// Writes a little-endian float32 C-order array.
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    check_shape(path, data.len(), shape)?;
    let mut out = encode("<f4", shape, data.len() * 4);
    data.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    super::write_atomically(path, &out)
}

/// Writes a little-endian int64 C-order array.
pub fn write_npy_i64(path: &Path, data: &[i64], shape: &[usize]) -> Result<()> {
    check_shape(path, data.len(), shape)?;
    let mut out = encode("<i8", shape, data.len() * 8);
    data.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    super::write_atomically(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        for shape in [vec![3usize], vec![2, 5], vec![0, 4], vec![]] {
            let n: usize = shape.iter().product();
            let mut bytes = encode("<i8", &shape, n * 8);
            assert_eq!(bytes.len() % 64, 0);
            (0..n as i64).for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            let a = parse_npy(&bytes, "mem").unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.data, NpyData::I64((0..n as i64).collect()));
        }
    }

    #[test]
    fn header_parser_rejects_garbage() {
        assert!(parse_header("{'descr': '<f4', 'shape': (2,), }").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,x), }").is_err());
        assert!(parse_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }").is_err());
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }   \n").unwrap();
        assert_eq!((h.descr.as_str(), h.fortran_order, h.shape), ("<f4", false, vec![2, 3]));
    }
}
