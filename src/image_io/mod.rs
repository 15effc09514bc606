//! Generic image I/O, independent of the CLIP engine that uses it. This module decodes encoded
//! files/bytes and accepts raw frames, both producing one type, [`RgbImage8`] (8-bit RGB, interleaved,
//! no padding); [`jpeg`] is the JPEG decoder that matches libjpeg-turbo, [`resize`] Pillow's bicubic resize.
//!
//! The conversion to RGB mirrors what `transformers` (≥ 5, `convert_to_rgb`) does with a PIL image
//! before `CLIPImageProcessor` sees it:
//! - grayscale is replicated into the three channels (PIL `convert("RGB")`);
//! - an alpha channel is composited onto a **white** background with PIL's integer
//!   `alpha_composite` arithmetic (bit-exact), then dropped;
//! - 16-bit samples keep their high byte (what PIL's PNG decoder does for 16-bit RGB/RGBA).
//!   Known divergence: PIL opens 16-bit *grayscale* PNGs as mode `I;16` and `convert("RGB")` clips
//!   every value above 255 to white; we take the high byte there too, so a 16-bit gray photo stays a
//!   photo instead of turning white.
//! - EXIF orientation (JPEG, PNG `eXIf`, WebP) is applied, as viewers do. `transformers` does not do
//!   this itself; our goldens call `PIL.ImageOps.exif_transpose` first.
//!
//! JPEG goes through [`jpeg`], which reproduces libjpeg-turbo + Pillow bit for bit (CMYK
//! included); PNG and WebP through the `image` crate (lossless formats: exact by construction; lossy
//! WebP matched libwebp on our fixture). Arithmetic-coded, 12-bit and lossless JPEGs fall back to the
//! `image` crate's decoder (not bit-exact with Pillow).

pub mod jpeg;
pub mod resize;

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};
use crate::invalid_arg;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B`, no row padding
/// (`data.len() == width * height * 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage8 {
    /// Wraps an interleaved RGB buffer, checking its length.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        check_dims(width, height)?;
        let want = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(3))
            .ok_or_else(|| invalid_arg!("image size {width}×{height} overflows"))?;
        if data.len() != want {
            return Err(invalid_arg!(
                "RGB buffer has {} bytes, a {width}×{height} RGB8 image needs {want}",
                data.len()
            ));
        }
        Ok(Self { width, height, data })
    }
}

/// Layout of one pixel in a raw frame handed over by a media pipeline (C mirror: `rateclust_pixel_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// `R G B`, 3 bytes per pixel.
    Rgb8 = 0,
    /// `R G B A`, 4 bytes per pixel (straight, not premultiplied alpha; composited onto white).
    Rgba8 = 1,
    /// `B G R`, 3 bytes per pixel (OpenCV's default).
    Bgr8 = 2,
    /// `B G R A`, 4 bytes per pixel (straight alpha; composited onto white).
    Bgra8 = 3,
    /// One gray byte per pixel.
    Gray8 = 4,
    /// `R G B X`, 4 bytes per pixel, the fourth byte ignored.
    Rgbx8 = 5,
    /// `B G R X`, 4 bytes per pixel, the fourth byte ignored.
    Bgrx8 = 6,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Rgbx8 | PixelFormat::Bgrx8 => 4,
        }
    }
}

/// Largest image decoded, in pixels: Pillow's decompression-bomb limit (2 × `Image.MAX_IMAGE_PIXELS`, where
/// Pillow raises `DecompressionBombError`), about 179 Mpx (13,377 × 13,377). CLIP sees 224 × 224, so
/// nothing legitimate is lost, and a 51 KB PNG claiming 100,000 × 100,000 no longer asks for 30 GB.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// An error naming the size when a `w`×`h` header exceeds `max_pixels` (the caller's decode budget,
/// [`MAX_IMAGE_PIXELS`] by default) or is empty.
pub fn check_pixel_count(w: u64, h: u64, max_pixels: u64) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::Format(format!("image header claims an empty image ({w}×{h})")));
    }
    if w.saturating_mul(h) > max_pixels {
        return Err(Error::Format(format!(
            "image header claims {w}×{h} = {} pixels, more than the limit of {max_pixels} (a possible decompression bomb)",
            w.saturating_mul(h)
        )));
    }
    Ok(())
}

/// Decodes a JPEG, PNG or WebP file (format sniffed from the content, not the extension), up to
/// [`MAX_IMAGE_PIXELS`].
pub fn decode_file(path: &Path) -> Result<RgbImage8> {
    decode_file_within(path, MAX_IMAGE_PIXELS)
}

/// [`decode_file`] with the caller's pixel budget: a header claiming more than `max_pixels` pixels is a
/// format error, raised before any pixel is allocated.
pub fn decode_file_within(path: &Path, max_pixels: u64) -> Result<RgbImage8> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes_within(&bytes, max_pixels).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Decodes an in-memory JPEG, PNG or WebP image, up to [`MAX_IMAGE_PIXELS`].
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage8> {
    decode_bytes_within(bytes, MAX_IMAGE_PIXELS)
}

/// [`decode_bytes`] with the caller's pixel budget (see [`decode_file_within`]).
pub fn decode_bytes_within(bytes: &[u8], max_pixels: u64) -> Result<RgbImage8> {
    if bytes.is_empty() {
        return Err(invalid_arg!("encoded image is empty (0 bytes)"));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Format(format!("cannot read image header: {e}")))?;
    match reader.format() {
        // zune-jpeg fills a truncated scan with gray instead of failing; Pillow refuses such files.
        Some(image::ImageFormat::Jpeg) if !jpeg_has_eoi_after_scan(bytes) => {
            return Err(Error::Format("JPEG data is truncated (no end-of-image marker after the scan data)".into()))
        }
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::WebP) => {}
        Some(f) => return Err(Error::Format(format!("unsupported image format {f:?} (JPEG, PNG or WebP expected)"))),
        None => return Err(Error::Format("unknown image format (JPEG, PNG or WebP expected)".into())),
    }
    let is_jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    let mut decoder = reader.into_decoder().map_err(|e| Error::Format(format!("cannot decode image: {e}")))?;
    // Before any pixel is allocated: a small file can claim a huge image (a decompression bomb).
    let (w, h) = decoder.dimensions();
    check_pixel_count(w as u64, h as u64, max_pixels)?;
    if is_jpeg {
        check_jpeg_size_plausible(bytes, w as u64, h as u64)?;
    }
    // A broken EXIF block should not make a decodable image unusable: fall back to no rotation.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    // JPEG: our libjpeg-turbo-exact decoder (what Pillow sees); the image crate only for what it does
    // not implement (CMYK, arithmetic coding, 12-bit).
    let rgb = match if is_jpeg { jpeg::decode(bytes, max_pixels)? } else { None } {
        Some(rgb) => rgb,
        None => {
            let img = DynamicImage::from_decoder(decoder).map_err(|e| Error::Format(format!("cannot decode image: {e}")))?;
            to_rgb8_like_pil(img)?
        }
    };
    if orientation == image::metadata::Orientation::NoTransforms {
        return Ok(rgb);
    }
    let (w, h) = (rgb.width as u32, rgb.height as u32);
    let buf = image::RgbImage::from_raw(w, h, rgb.data).ok_or_else(|| Error::Internal("RGB buffer size".into()))?;
    let mut dynimg = DynamicImage::ImageRgb8(buf);
    dynimg.apply_orientation(orientation);
    let (w, h) = (dynimg.width() as usize, dynimg.height() as usize);
    RgbImage8::new(w, h, dynimg.into_rgb8().into_raw())
}

/// Copies a raw frame (rows `stride_bytes` apart, the first `width * bpp` bytes of each row used) into
/// an [`RgbImage8`]. The last row only needs `width * bpp` bytes, so a tightly cropped buffer works.
pub fn from_raw(data: &[u8], width: usize, height: usize, stride_bytes: usize, format: PixelFormat) -> Result<RgbImage8> {
    let mut img = RgbImage8 { width: 0, height: 0, data: Vec::new() };
    from_raw_into(data, width, height, stride_bytes, format, &mut img)?;
    Ok(img)
}

/// [`from_raw`] into `img`, reusing its buffer: a frame no larger than the ones `img` held before converts
/// without allocating. On error `img` is left empty (0×0).
pub fn from_raw_into(data: &[u8], width: usize, height: usize, stride_bytes: usize, format: PixelFormat, img: &mut RgbImage8) -> Result<()> {
    img.width = 0;
    img.height = 0;
    img.data.clear();
    check_dims(width, height)?;
    let bpp = format.bytes_per_pixel();
    let row = width.checked_mul(bpp).ok_or_else(|| invalid_arg!("width {width} overflows"))?;
    if stride_bytes < row {
        return Err(invalid_arg!(
            "stride {stride_bytes} bytes is smaller than one row ({width} pixels × {bpp} bytes = {row})"
        ));
    }
    let need = (height - 1)
        .checked_mul(stride_bytes)
        .and_then(|x| x.checked_add(row))
        .ok_or_else(|| invalid_arg!("frame size {width}×{height} with stride {stride_bytes} overflows"))?;
    if data.len() < need {
        return Err(invalid_arg!(
            "frame buffer has {} bytes, {width}×{height} {format:?} with stride {stride_bytes} needs {need}",
            data.len()
        ));
    }
    let out = &mut img.data;
    out.reserve(width * height * 3);
    for y in 0..height {
        let src = &data[y * stride_bytes..y * stride_bytes + row];
        match format {
            PixelFormat::Rgb8 => out.extend_from_slice(src),
            PixelFormat::Bgr8 => src.chunks_exact(3).for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            PixelFormat::Rgbx8 => src.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
            PixelFormat::Bgrx8 => src.chunks_exact(4).for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            PixelFormat::Gray8 => src.iter().for_each(|&g| out.extend_from_slice(&[g, g, g])),
            PixelFormat::Rgba8 => src.chunks_exact(4).for_each(|p| {
                out.extend_from_slice(&over_white([p[0], p[1], p[2]], p[3]));
            }),
            PixelFormat::Bgra8 => src.chunks_exact(4).for_each(|p| {
                out.extend_from_slice(&over_white([p[2], p[1], p[0]], p[3]));
            }),
        }
    }
    debug_assert_eq!(out.len(), width * height * 3);
    img.width = width;
    img.height = height;
    Ok(())
}

/// The marker segments of a JPEG stream after SOI, up to and including its first start-of-scan: (marker,
/// index of the segment's length field). Ends early where the stream is not a marker (malformed) or ends.
fn jpeg_segments(b: &[u8]) -> impl Iterator<Item = (u8, usize)> + '_ {
    let mut i = 2; // after SOI
    let mut done = false;
    std::iter::from_fn(move || {
        while !done && i + 4 <= b.len() && b[i] == 0xFF {
            let marker = b[i + 1];
            if marker == 0xFF {
                i += 1; // fill byte
                continue;
            }
            let at = i + 2;
            i += 2 + u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            done = marker == 0xDA;
            return Some((marker, at));
        }
        None
    })
}

/// Whether a JPEG stream has an end-of-image marker (`FF D9`) after its first start-of-scan. Walks the
/// marker segments before the scan (an EXIF thumbnail inside APP1 carries its own `FF D9`); inside
/// entropy-coded data `FF` is always followed by `00` or a restart marker, so `FF D9` there is the EOI.
fn jpeg_has_eoi_after_scan(b: &[u8]) -> bool {
    jpeg_segments(b).find(|&(m, _)| m == 0xDA).is_some_and(|(_, at)| {
        let len = u16::from_be_bytes([b[at], b[at + 1]]) as usize;
        b[(at + len).min(b.len())..].windows(2).any(|w| w == [0xFF, 0xD9])
    })
}

/// The start-of-frame marker of a JPEG stream (0xC0..=0xCF except DHT/JPG/DAC) before its first scan.
fn jpeg_frame_marker(b: &[u8]) -> Option<u8> {
    jpeg_segments(b).map(|(m, _)| m).find(|m| (0xC0..=0xCF).contains(m) && ![0xC4, 0xC8, 0xCC].contains(m))
}

/// A Huffman-coded JPEG spends at least one bit on every 8×8 block of its first component (the DC code of
/// the first scan has length ≥ 1), so a w×h frame needs at least w·h / 512 bytes. A 3–10 KB file whose
/// frame header claims tens of thousands of pixels a side is truncated or lies; decoding it invented
/// gigabytes of gray pixels where Pillow reports a broken stream. (Arithmetic coding can go below a bit
/// per block and is not checked.)
fn check_jpeg_size_plausible(bytes: &[u8], w: u64, h: u64) -> Result<()> {
    let huffman = matches!(jpeg_frame_marker(bytes), Some(0xC0..=0xC3 | 0xC5..=0xC7));
    if huffman && w.saturating_mul(h) > 512 * bytes.len() as u64 {
        return Err(Error::Format(format!(
            "JPEG frame header claims {w}×{h} pixels, but the file has only {} bytes (a Huffman-coded JPEG of that size needs at least {}): the file is truncated or its header is wrong",
            bytes.len(),
            w * h / 512
        )));
    }
    Ok(())
}

fn check_dims(width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(invalid_arg!("image size {width}×{height}: width and height must be positive"));
    }
    Ok(())
}

/// One straight-alpha pixel composited onto opaque white, exactly as Pillow's
/// `Image.alpha_composite(white, im)` computes it (AlphaComposite.c: 7 fractional bits, division by 255
/// through two shifts). With an opaque white destination Pillow's coefficients reduce to
/// `coef1 = a·128` and `coef2 = (255 − a)·128`.
#[inline]
pub fn over_white(rgb: [u8; 3], a: u8) -> [u8; 3] {
    if a == 0 {
        return [255, 255, 255];
    }
    let a = a as u32;
    let coef1 = a << 7;
    let coef2 = (255 - a) << 7;
    rgb.map(|c| {
        let t = c as u32 * coef1 + 255 * coef2 + (0x80 << 7);
        ((((t >> 8) + t) >> 8) >> 7) as u8
    })
}

/// Converts any decoded image to RGB8 the way the transformers/PIL path does (module docs).
fn to_rgb8_like_pil(img: DynamicImage) -> Result<RgbImage8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    check_dims(w, h)?;
    let mut out = Vec::with_capacity(w * h * 3);
    match img {
        DynamicImage::ImageRgb8(b) => out = b.into_raw(),
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().for_each(|&g| out.extend_from_slice(&[g, g, g])),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).for_each(|p| {
            out.extend_from_slice(&over_white([p[0]; 3], p[1]));
        }),
        DynamicImage::ImageRgba8(b) => b.as_raw().chunks_exact(4).for_each(|p| {
            out.extend_from_slice(&over_white([p[0], p[1], p[2]], p[3]));
        }),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().for_each(|&g| out.extend_from_slice(&[(g >> 8) as u8; 3])),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).for_each(|p| {
            out.extend_from_slice(&over_white([(p[0] >> 8) as u8; 3], (p[1] >> 8) as u8));
        }),
        DynamicImage::ImageRgb16(b) => out.extend(b.as_raw().iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(b) => b.as_raw().chunks_exact(4).for_each(|p| {
            let hi = |v: u16| (v >> 8) as u8;
            out.extend_from_slice(&over_white([hi(p[0]), hi(p[1]), hi(p[2])], hi(p[3])));
        }),
        // Float formats do not come out of the JPEG/PNG/WebP decoders; keep a sane path anyway.
        other => {
            let has_alpha = other.color().has_alpha();
            let rgba = other.into_rgba8();
            rgba.as_raw().chunks_exact(4).for_each(|p| {
                let a = if has_alpha { p[3] } else { 255 };
                out.extend_from_slice(&over_white([p[0], p[1], p[2]], a));
            });
        }
    }
    RgbImage8::new(w, h, out)
}

#[cfg(test)]
mod bomb_tests {
    use super::*;

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }

    /// A well-formed PNG of w×h RGB pixels whose IDAT holds the zlib stream of `rows` zero rows.
    fn png(w: u32, h: u32, rows: usize) -> Vec<u8> {
        use std::io::Write;
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; rows * (1 + 3 * w as usize)]).unwrap();
        chunk(&mut out, b"IDAT", &z.finish().unwrap());
        chunk(&mut out, b"IEND", &[]);
        out
    }

    /// The 100,000 × 100,000 header is refused before any pixel memory is asked for; a legitimate
    /// small image of the same construction decodes.
    #[test]
    fn png_bomb_is_refused_by_its_header() {
        let e = decode_bytes(&png(100_000, 100_000, 4)).unwrap_err();
        assert_eq!(e.status(), crate::Status::Format);
        assert!(e.to_string().contains("decompression bomb"), "{e}");
        let ok = decode_bytes(&png(16, 8, 8)).unwrap();
        assert_eq!((ok.width, ok.height), (16, 8));
        assert!(check_pixel_count(13_377, 13_377, MAX_IMAGE_PIXELS).is_ok());
        assert!(check_pixel_count(13_378, 13_378, MAX_IMAGE_PIXELS).is_err());
        assert!(check_pixel_count(100, 100, 9_999).is_err());
        assert!(check_pixel_count(100, 100, 10_000).is_ok());
    }

    /// A real 64×48 JPEG whose frame header is patched to claim 10,000 × 10,000 (under the pixel limit) is refused as implausible
    /// (it was decoded into 300 MB of invented pixels); the unpatched file decodes.
    #[test]
    fn jpeg_with_a_lying_frame_header_is_refused() {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 128]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        let ok = decode_bytes(&jpeg).unwrap();
        assert_eq!((ok.width, ok.height), (64, 48));
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame header");
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        jpeg[sof + 5..sof + 7].copy_from_slice(&10_000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&10_000u16.to_be_bytes());
        let e = decode_bytes(&jpeg).unwrap_err();
        assert_eq!(e.status(), crate::Status::Format);
        assert!(e.to_string().contains("truncated or its header is wrong"), "{e}");
    }
}
