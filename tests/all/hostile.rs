//! Bad and hostile input (issue 6): a corpus of broken, odd and malicious files, written by the
//! test itself. Whatever the dataset holds, the run finishes, every file found is analysed or
//! listed once with a precise reason, nothing from the dataset reaches report.html unescaped,
//! and nothing is written outside the output folder.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Cursor, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};

use crate::common::{Fixture, synthetic};

/// What the corpus test expects of one file.
#[derive(Debug, Clone)]
enum Expect {
    Image,
    /// Listed as unreadable, its reason containing this text.
    Unreadable(&'static str),
    /// Listed as skipped, its reason containing this text.
    Skipped(&'static str),
    /// Corrupt data a decoder may or may not get through (flipped bits in entropy-coded data):
    /// analysed, or unreadable naming the format; never dropped, never a crash.
    ImageOrUnreadable(&'static str),
}

/// The corpus: files with expectations, plus bookkeeping for the dataset root.
struct Corpus {
    root: PathBuf,
    expected: BTreeMap<String, Expect>,
}

impl Corpus {
    fn new(root: PathBuf) -> Corpus {
        std::fs::create_dir_all(&root).unwrap();
        Corpus {
            root,
            expected: BTreeMap::new(),
        }
    }

    /// Writes `bytes` at `rel` (raw bytes: names need not be UTF-8).
    fn put(&mut self, rel: &[u8], bytes: &[u8], expect: Expect) -> PathBuf {
        let path = self.root.join(OsStr::from_bytes(rel));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        self.expect(rel, expect);
        path
    }

    fn expect(&mut self, rel: &[u8], expect: Expect) {
        let shown = String::from_utf8_lossy(rel).into_owned();
        assert!(
            self.expected.insert(shown.clone(), expect).is_none(),
            "corpus bug: {shown} twice"
        );
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn rgb(seed: u32, width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(synthetic(seed, width, height))
}

/// Deterministic pseudo-random bytes (xorshift), so the corpus is the same on every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// PNG through the png crate, for what the `image` crate's encoder does not write (palette).
fn png_raw(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    palette: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(palette) = palette {
            encoder.set_palette(palette.to_vec());
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    bytes
}

/// A PNG of `width`x`height` black grey pixels, streamed row by row: tiny on disk (deflate
/// squeezes zeros about 1000:1), enormous when decoded, and never held in the test's memory.
pub fn zero_png(path: &Path, width: u32, height: u32, color: png::ColorType) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let channels = match color {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        _ => 1,
    };
    let row = vec![0u8; width as usize * channels];
    for _ in 0..height {
        stream.write_all(&row).unwrap();
    }
    stream.finish().unwrap();
}

/// A 1x1 Adam7-interlaced RGB PNG, assembled by hand (the png crate does not write
/// interlaced files): with one pixel, only the first of the seven passes holds data.
fn interlaced_png(pixel: [u8; 3]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 1]); // 8-bit RGB, deflate, adaptive filters, Adam7
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream with one stored (uncompressed) deflate block.
    let raw = [0, pixel[0], pixel[1], pixel[2]]; // filter type 0, then the pixel
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Options of the hand-made JPEG writer.
#[derive(Default)]
pub struct TinyJpeg {
    /// SOF2 with a DC scan and one AC scan per component, instead of baseline SOF0.
    pub progressive: bool,
    /// An Adobe APP14 segment (transform 0: CMYK stored inverted, as Photoshop writes it).
    pub adobe: bool,
    /// An EXIF APP1 segment with this orientation tag.
    pub orientation: Option<u16>,
}

/// A JPEG whose every 8x8 block is one flat colour: each component is stored as the given
/// sample value (1 component: grey, 3: YCbCr, 4: CMYK). Written by hand because the image
/// crate's encoder writes neither CMYK nor progressive JPEGs. Flat blocks need only DC
/// coefficients, which keeps the entropy coding to a few lines.
pub fn tiny_jpeg(width: u16, height: u16, samples: &[u8], options: &TinyJpeg) -> Vec<u8> {
    let n = samples.len();
    let mut out = vec![0xFF, 0xD8];
    let segment = |out: &mut Vec<u8>, marker: u8, body: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    if let Some(orientation) = options.orientation {
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
        exif.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
        exif.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]); // Orientation, SHORT, 1
        exif.extend_from_slice(&orientation.to_be_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next IFD
        segment(&mut out, 0xE1, &exif);
    }
    if options.adobe {
        segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    }
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&height.to_be_bytes());
    sof.extend_from_slice(&width.to_be_bytes());
    sof.push(n as u8);
    for c in 0..n {
        sof.extend_from_slice(&[c as u8 + 1, 0x11, 0]);
    }
    segment(
        &mut out,
        if options.progressive { 0xC2 } else { 0xC0 },
        &sof,
    );
    // DC table: categories 0..=11, each a 4-bit code equal to the category.
    let mut dht = vec![0x00];
    let mut counts = [0u8; 16];
    counts[3] = 12;
    dht.extend_from_slice(&counts);
    dht.extend(0..12u8);
    // AC table: a single 1-bit code "0" for symbol 0x00 (end of block / EOB run of one).
    dht.push(0x10);
    let mut counts = [0u8; 16];
    counts[0] = 1;
    dht.extend_from_slice(&counts);
    dht.push(0x00);
    segment(&mut out, 0xC4, &dht);

    let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
    let scan_header = |components: &[usize], ss: u8, se: u8| {
        let mut sos = vec![components.len() as u8];
        for &c in components {
            sos.extend_from_slice(&[c as u8 + 1, 0x00]);
        }
        sos.extend_from_slice(&[ss, se, 0]);
        sos
    };
    let all: Vec<usize> = (0..n).collect();
    // The first scan: DC (and, in baseline, an end-of-block per block).
    segment(
        &mut out,
        0xDA,
        &scan_header(&all, 0, if options.progressive { 0 } else { 63 }),
    );
    let mut bits = BitWriter::default();
    for block in 0..blocks {
        for &sample in samples {
            // Level shift and DCT scaling: a flat block of value s has DC = (s - 128) * 8.
            let dc = (i32::from(sample) - 128) * 8;
            let diff = if block == 0 { dc } else { 0 };
            let category = 32 - diff.unsigned_abs().leading_zeros();
            bits.put(category, 4);
            let extra = if diff < 0 {
                diff + (1 << category) - 1
            } else {
                diff
            };
            bits.put(extra as u32, category);
            if !options.progressive {
                bits.put(0, 1);
            }
        }
    }
    out.extend(bits.finish());
    if options.progressive {
        for c in 0..n {
            segment(&mut out, 0xDA, &scan_header(&[c], 1, 63));
            let mut bits = BitWriter::default();
            for _ in 0..blocks {
                bits.put(0, 1);
            }
            out.extend(bits.finish());
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.used += 1;
            if self.used == 8 {
                self.push_byte();
            }
        }
    }

    fn push_byte(&mut self) {
        let byte = self.acc as u8;
        self.bytes.push(byte);
        if byte == 0xFF {
            self.bytes.push(0x00); // byte stuffing
        }
        self.acc = 0;
        self.used = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        while self.used != 0 {
            self.put(1, 1); // pad with ones
        }
        self.bytes
    }
}

/// Every file below `dir` (not following links) with its size and mtime, except `skip` (the
/// output folder, whose creation is the one change `dir` itself may see).
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.path() != skip)
        .filter_map(Result::ok)
        .map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            (
                e.path().to_path_buf(),
                (meta.len(), meta.modified().unwrap()),
            )
        })
        .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Writes the whole corpus into `data` and returns what each file should become.
fn write_corpus(data: &Path) -> Corpus {
    use Expect::*;
    let mut c = Corpus::new(data.to_path_buf());
    let good_png = encode(&rgb(1, 16, 12), ImageFormat::Png);
    let good_jpg = encode(&rgb(2, 32, 24), ImageFormat::Jpeg);

    // Broken files.
    c.put(b"cat/ok.png", &good_png, Image);
    c.put(b"cat/ok.jpg", &good_jpg, Image);
    c.put(
        b"cat/truncated.jpg",
        &good_jpg[..good_jpg.len() * 2 / 3],
        Unreadable("truncated jpeg"),
    );
    let big_png = encode(&rgb(3, 64, 64), ImageFormat::Png);
    c.put(
        b"cat/truncated.png",
        &big_png[..big_png.len() / 2],
        Unreadable("truncated png"),
    );
    c.put(b"cat/empty.jpg", b"", Unreadable("empty file"));
    c.put(b"cat/empty.png", b"", Unreadable("empty file"));
    c.put(b"cat/empty_notes", b"", Skipped("empty file"));
    c.put(
        b"cat/text.jpg",
        b"this is not a picture\n",
        Unreadable("is plain text"),
    );
    c.put(
        b"cat/error_page.png",
        b"<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>",
        Unreadable("HTML page"),
    );
    c.put(
        b"cat/random.jpg",
        &noise(1, 5000),
        Unreadable("not an image"),
    );
    c.put(b"cat/random.bin", &noise(2, 5000), Skipped("not an image"));
    let mut bad_crc = good_png.clone();
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    let idat_len = u32::from_be_bytes(bad_crc[idat - 4..idat].try_into().unwrap()) as usize;
    bad_crc[idat + 4 + idat_len] ^= 0xFF; // first byte of the IDAT chunk's CRC
    c.put(b"cat/bad_crc.png", &bad_crc, Unreadable("damaged png"));
    let mut flipped = encode(&rgb(4, 64, 64), ImageFormat::Jpeg);
    let sos = flipped.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let end = flipped.len() - 2;
    for i in (sos + 20..end).step_by(37) {
        if flipped[i] != 0xFF && flipped[i] ^ 0x10 != 0xFF {
            flipped[i] ^= 0x10;
        }
    }
    c.put(b"cat/flipped_bits.jpg", &flipped, ImageOrUnreadable("jpeg"));
    let mut bad_header = good_jpg.clone();
    let sof = bad_header
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .unwrap();
    bad_header[sof + 9] = 7; // seven components
    c.put(
        b"cat/bad_header.jpg",
        &bad_header,
        Unreadable("damaged jpeg"),
    );

    // Colour types and formats.
    let grey = DynamicImage::ImageLuma8(ImageBuffer::from_fn(9, 7, |x, y| {
        Luma([(x * 20 + y) as u8])
    }));
    c.put(b"colours/grey.png", &encode(&grey, ImageFormat::Png), Image);
    c.put(
        b"colours/grey.jpg",
        &encode(&grey, ImageFormat::Jpeg),
        Image,
    );
    let grey_alpha =
        DynamicImage::ImageLumaA8(ImageBuffer::from_fn(9, 7, |x, _| LumaA([x as u8 * 9, 128])));
    c.put(
        b"colours/grey_alpha.png",
        &encode(&grey_alpha, ImageFormat::Png),
        Image,
    );
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(9, 7, |x, y| {
        Rgba([x as u8, y as u8, 3, 200])
    }));
    c.put(b"colours/rgba.png", &encode(&rgba, ImageFormat::Png), Image);
    let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    c.put(
        b"colours/palette.png",
        &png_raw(
            4,
            2,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            Some(&palette),
            &[0, 1, 2, 0, 1, 2, 0, 1],
        ),
        Image,
    );
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_fn(5, 3, |x, _| {
        Rgb([0x40FF, (x as u16) << 12, 0xFFFF])
    }));
    c.put(
        b"colours/rgb16.png",
        &encode(&rgb16, ImageFormat::Png),
        Image,
    );
    let grey16 =
        DynamicImage::ImageLuma16(ImageBuffer::from_fn(5, 3, |x, _| Luma([(x as u16) << 13])));
    c.put(
        b"colours/grey16.png",
        &encode(&grey16, ImageFormat::Png),
        Image,
    );
    let cmyk = TinyJpeg {
        adobe: true,
        ..Default::default()
    };
    c.put(
        b"colours/cmyk.jpg",
        &tiny_jpeg(16, 16, &[255, 0, 255, 255], &cmyk),
        Image,
    );
    let progressive = TinyJpeg {
        progressive: true,
        ..Default::default()
    };
    c.put(
        b"colours/progressive.jpg",
        &tiny_jpeg(24, 16, &[100, 128, 128], &progressive),
        Image,
    );
    let rotated = TinyJpeg {
        orientation: Some(6),
        ..Default::default()
    };
    c.put(
        b"colours/exif_rotated.jpg",
        &tiny_jpeg(40, 8, &[200, 128, 128], &rotated),
        Image,
    );
    c.put(
        b"colours/interlaced.png",
        &interlaced_png([9, 99, 199]),
        Image,
    );
    c.put(
        b"formats/a.bmp",
        &encode(&rgb(5, 10, 6), ImageFormat::Bmp),
        Image,
    );
    c.put(
        b"formats/a.tiff",
        &encode(&rgb(6, 10, 6), ImageFormat::Tiff),
        Image,
    );
    c.put(
        b"formats/a.webp",
        &encode(&rgb(7, 10, 6), ImageFormat::WebP),
        Image,
    );
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for seed in 0..3 {
            let frame = DynamicImage::ImageRgb8(synthetic(seed, 10, 6)).into_rgba8();
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    c.put(b"formats/animated.gif", &gif, Image);
    c.put(b"formats/gif_named.jpg", &gif, Image);
    c.put(b"formats/png_no_extension", &good_png, Image);
    c.put(
        b"formats/UPPER.PNG",
        &encode(&rgb(8, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(
        b"formats/UPPER.JPEG",
        &encode(&rgb(9, 8, 8), ImageFormat::Jpeg),
        Image,
    );
    c.put(
        b"formats/one_pixel.png",
        &encode(&rgb(10, 1, 1), ImageFormat::Png),
        Image,
    );
    c.put(
        b"formats/wide_4000x2.png",
        &encode(&rgb(11, 4000, 2), ImageFormat::Png),
        Image,
    );

    // Huge images: refused from the header, before any pixel is decoded.
    let huge = data.join("huge/zeros_30000x30000.png");
    std::fs::create_dir_all(huge.parent().unwrap()).unwrap();
    zero_png(&huge, 30000, 30000, png::ColorType::Grayscale);
    c.expect(
        b"huge/zeros_30000x30000.png",
        Unreadable("image is 30000x30000 (900,000,000 pixels): over the decode limit"),
    );
    // A GIF whose header claims 65535x65535: 17 bytes of promise.
    let mut gif_bomb = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    gif_bomb.extend_from_slice(b",\0\0\0\0\xff\xff\xff\xff\0\x02\x02D\x01\0;");
    c.put(
        b"huge/gif_65535x65535.gif",
        &gif_bomb,
        Unreadable("over the decode limit"),
    );

    // Not images, hidden files, litter, files outside class folders.
    c.put(b"cat/notes.txt", b"some notes", Skipped("not an image"));
    c.put(b"cat/labels.csv", b"a,b\n1,2\n", Skipped("not an image"));
    c.put(b"cat/.hidden.png", &good_png, Skipped("hidden file"));
    // A hidden folder is listed once, as a folder: its contents are never searched.
    let hidden = data.join(".hidden_folder");
    std::fs::create_dir_all(&hidden).unwrap();
    std::fs::write(hidden.join("x.png"), &good_png).unwrap();
    c.expect(b".hidden_folder", Skipped("hidden folder"));
    c.put(b"cat/.DS_Store", b"\0\0\0\x01Bud1", Skipped("litter"));
    c.put(
        b"loose.png",
        &good_png,
        Skipped("not inside a class folder"),
    );

    // Links.
    let link_target = c.put(
        b"dog/target.png",
        &encode(&rgb(12, 8, 8), ImageFormat::Png),
        Image,
    );
    std::os::unix::fs::symlink(&link_target, data.join("dog/link_to_target.png")).unwrap();
    c.expect(b"dog/link_to_target.png", Image);
    std::os::unix::fs::symlink("..", data.join("dog/loop")).unwrap();
    c.expect(b"dog/loop", Skipped("symbolic link loop"));
    std::os::unix::fs::symlink("self.png", data.join("dog/self.png")).unwrap();
    c.expect(b"dog/self.png", Skipped("symbolic link"));
    std::os::unix::fs::symlink("missing.png", data.join("dog/dangling.png")).unwrap();
    c.expect(b"dog/dangling.png", Skipped("broken symbolic link"));

    // A named pipe would block a reader forever: it must be skipped from its type alone.
    let fifo = std::ffi::CString::new(data.join("dog/pipe.png").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    c.expect(b"dog/pipe.png", Skipped("not a regular file"));

    // A file without read permission: root reads it anyway (CI runs as root).
    let locked = c.put(
        b"dog/no_permission.png",
        &good_png,
        if is_root() {
            Image
        } else {
            Unreadable("permission denied")
        },
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();

    // Hostile and odd names, in class folders and file names.
    let script_png = encode(&rgb(13, 8, 8), ImageFormat::Png);
    c.put(
        b"<script>alert('class')</script>/ok.png",
        &script_png,
        Image,
    );
    c.put(
        b"dog/<script>alert('file')</script>.png",
        &encode(&rgb(14, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(
        b"dog/</script><script>alert('broken')</script>.jpg",
        b"<html>",
        Unreadable("HTML"),
    );
    c.put(
        b"dog/<img src=x onerror=alert('skipped')>.txt",
        b"text",
        Skipped("not an image"),
    );
    c.put(
        b"a & b \"quoted\" 'single'/x.png",
        &encode(&rgb(15, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(
        b"with space/a file name.png",
        &encode(&rgb(16, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(
        b"new\nline/line\nbreak.png",
        &encode(&rgb(17, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(
        b"bad\xff\xfeutf8/caf\xe9.png",
        &encode(&rgb(18, 8, 8), ImageFormat::Png),
        Image,
    );
    c.put(b"dog/caf\xe9_broken.jpg", b"", Unreadable("empty file"));
    c
}

const PLANTED: &[&str] = &[
    "<script>alert('class')",
    "<script>alert('file')",
    "<script>alert('broken')",
    "<img src=x onerror",
];

// Issue 6: a dataset full of broken, odd and hostile files must not crash the run, lose a
// file, inject markup into the report, or write outside the output folder.
#[test]
fn hostile_corpus_is_fully_accounted_for_escaped_and_contained() {
    let fx = Fixture::new();
    let corpus = write_corpus(&fx.data());
    let before = snapshot(fx.dir.path(), &fx.out());

    let run = fx.report(&[]);
    assert!(
        !run.stderr().contains("panicked"),
        "a panic was printed:\n{}",
        run.stderr()
    );
    let report = run.report_json();

    // Every file found: analysed, or listed exactly once with the expected reason.
    let mut listed: BTreeMap<String, (&str, String)> = BTreeMap::new();
    for key in ["unreadable", "skipped"] {
        for entry in report[key].as_array().unwrap() {
            let path = entry["path"].as_str().unwrap().to_string();
            let reason = entry["reason"].as_str().unwrap().to_string();
            let key: &str = if key == "unreadable" {
                "unreadable"
            } else {
                "skipped"
            };
            assert!(
                listed.insert(path.clone(), (key, reason)).is_none(),
                "{path} listed twice"
            );
        }
    }
    // Shown with --nocapture: the reasons as a user reads them.
    for (path, (kind, reason)) in &listed {
        println!("{kind:10} {path:?}: {reason}");
    }
    let mut images = 0;
    let mut problems = Vec::new();
    for (path, expect) in &corpus.expected {
        let got = listed.remove(path);
        let ok = match (expect, &got) {
            (Expect::Image, None) => true,
            (Expect::Unreadable(want), Some(("unreadable", reason)))
            | (Expect::ImageOrUnreadable(want), Some(("unreadable", reason))) => {
                reason.contains(want)
            }
            (Expect::ImageOrUnreadable(_), None) => true,
            (Expect::Skipped(want), Some(("skipped", reason))) => reason.contains(want),
            _ => false,
        };
        if got.is_none() {
            images += 1;
        }
        if !ok {
            problems.push(format!("{path:?}: expected {expect:?}, got {got:?}"));
        }
    }
    for (path, got) in &listed {
        problems.push(format!("{path:?}: listed but not in the corpus: {got:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        report["dataset"]["images"], images,
        "analysed images do not add up: a file was dropped or counted twice"
    );

    // Colour types are named and converted.
    let colours = &report["dataset"]["color_types"];
    for colour in [
        "CMYK",
        "grey",
        "grey+alpha",
        "RGBA",
        "RGB 16-bit",
        "grey 16-bit",
    ] {
        assert!(
            colours[colour].as_u64().unwrap_or(0) >= 1,
            "{colour}: {colours}"
        );
    }
    // EXIF orientation 6 turns the 40x8 JPEG into 8x40.
    let sizes = &report["dataset"]["sizes"];
    assert!(
        sizes.to_string().contains("8x40"),
        "rotated size missing: {sizes}"
    );

    // Nothing planted reaches the HTML unescaped.
    let html = run.html();
    for planted in PLANTED {
        assert!(
            !html.contains(planted),
            "{planted} unescaped in report.html"
        );
    }
    assert!(
        html.contains("&lt;script&gt;alert("),
        "names must stay visible"
    );
    assert!(html.contains("caf\u{FFFD}"), "lossy name must stay visible");
    // And the JSON holds them as text, faithfully.
    let json_text = std::fs::read_to_string(run.out.join("report.json")).unwrap();
    assert!(json_text.contains("\"new\\nline\""), "class with a newline");
    assert!(json_text.contains("dog/</script><script>alert('broken')</script>.jpg"));
    // summary.md shows dataset strings inside code spans, where Markdown renders them as text.
    let summary = std::fs::read_to_string(run.out.join("summary.md")).unwrap();
    for line in summary.lines() {
        let outside_code: String = line.split('`').step_by(2).collect();
        for planted in PLANTED {
            assert!(
                !outside_code.contains(planted),
                "{planted} outside a code span in summary.md: {line}"
            );
        }
    }

    // Nothing outside the output folder changed.
    let after = snapshot(fx.dir.path(), &fx.out());
    assert!(before == after, "files outside the output folder changed");

    // A rerun reuses everything and reports the same.
    let again = fx.report(&[]);
    assert_eq!(again.report_json()["unreadable"], report["unreadable"]);
    assert_eq!(again.report_json()["skipped"], report["skipped"]);
}

// What went wrong before: the limit message named only the config key; the flag must work
// and the message must say how to get the image analysed.
#[test]
fn hostile_max_pixels_flag_raises_the_decode_limit() {
    let fx = Fixture::new();
    fx.png("cat/a.png", 1);
    let path = fx.data().join("cat/big.png");
    zero_png(&path, 300, 200, png::ColorType::Rgb);
    let run = fx.report(&["--max-pixels", "50000"]);
    let report = run.report_json();
    let reason = report["unreadable"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("image is 300x200 (60,000 pixels): over the decode limit of 50,000 pixels")
            && reason.contains("--max-pixels"),
        "{reason}"
    );
    let run = fx.report(&["--max-pixels", "60000"]);
    assert_eq!(run.report_json()["dataset"]["images"], 2);
}

// CMYK (Adobe, inverted) JPEGs must come out as the colour a viewer shows: stored
// C,M,Y,K = 255,0,255,255 means no cyan, full magenta, no yellow, no black: magenta.
#[test]
fn hostile_cmyk_and_16_bit_pixels_are_converted_exactly() {
    let fx = Fixture::new();
    let adobe = TinyJpeg {
        adobe: true,
        ..Default::default()
    };
    fx.bytes("cmyk/a.jpg", &tiny_jpeg(8, 8, &[255, 0, 255, 255], &adobe));
    let report = fx.report(&[]).report_json();
    let mean: Vec<f64> = report["statistics"]["mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(mean, vec![1.0, 0.0, 1.0]);

    // 16-bit samples scale to 8 bits by value (0x40FF/257 = 64.7), not by taking a byte
    // (0x40 = 64 would be close, the low byte 0xFF would not).
    let fx = Fixture::new();
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_pixel(4, 4, Rgb([0x40FF, 0, 0xFFFF])));
    fx.bytes("deep/a.png", &encode(&rgb16, ImageFormat::Png));
    let report = fx.report(&[]).report_json();
    let red = report["statistics"]["mean"][0].as_f64().unwrap() * 255.0;
    assert!((red - 64.74).abs() < 0.6, "red {red}");
    assert_eq!(report["statistics"]["mean"][2], 1.0);
}

#[test]
fn hostile_names_alike_once_made_lossy_are_both_counted() {
    // Two names that differ only in invalid UTF-8 bytes show as the same text; both files
    // must still be counted (one analysed image each).
    let fx = Fixture::new();
    let png = encode(&rgb(1, 8, 8), ImageFormat::Png);
    let png2 = encode(&rgb(2, 8, 8), ImageFormat::Png);
    let dir = fx.data().join("cls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"a\xff.png")), &png).unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"a\xfe.png")), &png2).unwrap();
    let report = fx.report(&[]).report_json();
    assert_eq!(report["dataset"]["images"], 2);
}

/// Small valid inputs of every kind the readers take, for the mutation loop to break.
fn mutation_seeds() -> Vec<Vec<u8>> {
    let small = rgb(21, 12, 9);
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for seed in 0..2 {
            let frame = DynamicImage::ImageRgb8(synthetic(seed, 6, 5)).into_rgba8();
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    let progressive = TinyJpeg {
        progressive: true,
        orientation: Some(8),
        ..Default::default()
    };
    let cmyk = TinyJpeg {
        adobe: true,
        ..Default::default()
    };
    vec![
        encode(&small, ImageFormat::Png),
        encode(&small, ImageFormat::Jpeg),
        encode(&small, ImageFormat::Bmp),
        encode(&small, ImageFormat::Tiff),
        encode(&small, ImageFormat::WebP),
        gif,
        tiny_jpeg(16, 8, &[90, 120, 140], &progressive),
        tiny_jpeg(8, 8, &[10, 200, 30, 40], &cmyk),
        interlaced_png([1, 2, 3]),
        png_raw(
            3,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            Some(&[0, 0, 0, 255, 255, 255]),
            &[0, 1, 0],
        ),
        encode(&small, ImageFormat::Tga),
        b"path,label,split\nimg/a.png,cat,train\n\"img/b,c.png\",\"dog\"\"s\",test\n".to_vec(),
        b"{\"file_name\": \"a.png\", \"label\": 3}\n{\"file_name\": \"b.png\", \"label\": \"x\"}\n"
            .to_vec(),
        idx_images(2, 3, 3),
        idx_labels(&[1, 2]),
        shard_seed(),
        gzip(&shard_seed()),
    ]
}

/// An IDX images file of `count` grey `rows x cols` records.
fn idx_images(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend((0..count * rows * cols).map(|i| (i * 37) as u8));
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

/// A small WebDataset shard: labelled samples, an unlabelled image, an orphan label.
fn shard_seed() -> Vec<u8> {
    let png = encode(&rgb(3, 4, 2), ImageFormat::Png);
    let mut builder = tar::Builder::new(Vec::new());
    let members: [(&str, &[u8]); 6] = [
        ("000001.png", &png),
        ("000001.cls", b"3"),
        ("000002.png", &png),
        ("000002.json", br#"{"label": "dog"}"#),
        ("000003.png", &png),
        ("000004.txt", b"cat"),
    ];
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// One random change of the kinds that break parsers: flipped bits, "interesting" bytes
/// (0, 0xFF, sign boundaries) over length fields, cuts, and repeated or dropped spans.
fn mutate(bytes: &mut Vec<u8>, rng: &mut u64) {
    let mut next = |bound: usize| {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        (*rng % bound.max(1) as u64) as usize
    };
    if bytes.is_empty() {
        bytes.push(0);
    }
    match next(6) {
        0 => {
            for _ in 0..=next(8) {
                let at = next(bytes.len());
                bytes[at] ^= 1 << next(8);
            }
        }
        1 => {
            let at = next(bytes.len());
            let value = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE][next(6)];
            for b in bytes.iter_mut().skip(at).take(1 + next(4)) {
                *b = value;
            }
        }
        2 => {
            let keep = next(bytes.len());
            bytes.truncate(keep);
        }
        3 => {
            let start = next(bytes.len());
            let len = next(64).min(bytes.len() - start);
            let span: Vec<u8> = bytes[start..start + len].to_vec();
            let at = next(bytes.len());
            bytes.splice(at..at, span);
        }
        4 => {
            let start = next(bytes.len());
            let len = next(32).min(bytes.len() - start);
            bytes.drain(start..start + len);
        }
        _ => {
            // A big-endian 32-bit field (PNG/JPEG sizes and lengths) set to something large.
            let at = next(bytes.len().saturating_sub(4));
            let value = [u32::MAX, 0x8000_0000, 0xFFFF, 0x10000, 30000][next(5)];
            for (i, b) in value.to_be_bytes().iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
    }
}

// CI has no nightly toolchain for cargo-fuzz, so this seeded mutation loop runs the readers
// the fuzz targets cover (decode, the CIFAR batch reader, the IDX reader, the WebDataset
// shard reader, the gzip unpacker, the sealed cache artifacts, the manifest parser) on
// every `cargo test`: 20,000 mutated inputs, the same ones on every run. A panic
// names the seed and round so the input can be rebuilt.
#[test]
fn hostile_readers_survive_seeded_mutations() {
    use aldente::cache::{decode_artifact, seal};
    use aldente::dataset::manifest::{Columns, parse_header, parse_rows};
    use aldente::dataset::{
        DatasetKind, FileRole, Payload, SourceFile, UnitEncoding, cifar, idx, webdataset,
    };
    use aldente::decode::{DecodeOptions, Outcome, decode};
    use aldente::stages::ingest::{IngestArtifact, check_thumb_ranges};

    let options = DecodeOptions {
        thumbnail_size: 8,
        max_pixels: 1 << 16,
    };
    let batch = SourceFile {
        rel_path: "data_batch_1.bin".into(),
        abs_path: PathBuf::from("data_batch_1.bin"),
        size: 0,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::CifarBatch {
            split: "train".into(),
        },
    };
    let idx_file = SourceFile {
        rel_path: "train-images-idx3-ubyte".into(),
        abs_path: PathBuf::from("train-images-idx3-ubyte"),
        size: 0,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::IdxImages {
            split: Some("train".into()),
            labels_rel: "train-labels-idx1-ubyte".into(),
            labels_abs: PathBuf::from("train-labels-idx1-ubyte"),
        },
    };
    let shard = SourceFile {
        rel_path: "shard-0000.tar".into(),
        abs_path: PathBuf::from("shard-0000.tar"),
        size: 0,
        mtime_ns: 0,
        ino: 0,
        role: FileRole::Shard {
            split: None,
            label_field: None,
        },
    };
    let (good_images, good_labels) = (idx_images(3, 2, 2), idx_labels(&[0, 1, 2]));
    let seeds = mutation_seeds();
    let mut rng = 0x5EED_u64;
    for round in 0..20_000 {
        let seed = round % seeds.len();
        let mut bytes = seeds[seed].clone();
        for _ in 0..1 + round % 3 {
            mutate(&mut bytes, &mut rng);
        }
        let outcome = std::panic::catch_unwind(|| {
            match decode("m/x.jpg", &bytes, UnitEncoding::File, options) {
                Outcome::Image(image) => {
                    assert!(u64::from(image.width) * u64::from(image.height) <= 1 << 16);
                }
                Outcome::Unreadable(reason) | Outcome::NotImage(reason) => {
                    assert!(!reason.contains("ChunkType {"), "{reason}");
                }
            }
            // TGA has no signature: the extension sends any bytes to its decoder.
            if let Outcome::Image(image) = decode("m/x.tga", &bytes, UnitEncoding::File, options) {
                assert!(u64::from(image.width) * u64::from(image.height) <= 1 << 16);
            }
            let fixed = Columns {
                path: "path".into(),
                label: "label".into(),
                split: Some("split".into()),
            };
            for jsonl in [false, true] {
                let _ = parse_rows(&bytes, jsonl, &fixed);
                if let Ok(header) = parse_header(&bytes, jsonl)
                    && let Ok(columns) = Columns::find(&header, &Default::default())
                {
                    let _ = parse_rows(&bytes, jsonl, &columns);
                }
            }
            for kind in [DatasetKind::Cifar10, DatasetKind::Cifar100] {
                let (units, _) = cifar::units(&batch, "train", &bytes, &kind, None);
                for unit in units {
                    assert!(cifar::decode_record(unit.bytes).is_some());
                }
            }
            let payload = Payload::of(&bytes);
            for (images, labels) in [
                (&payload.bytes[..], &good_labels[..]),
                (&good_images[..], &payload.bytes[..]),
            ] {
                let (units, _) = idx::units(&idx_file, None, images, Ok(labels), None);
                for unit in units {
                    let UnitEncoding::IdxGrey { rows, cols } = unit.encoding else {
                        panic!("IDX unit of encoding {:?}", unit.encoding);
                    };
                    assert!(idx::decode_record(unit.bytes, rows, cols).is_some());
                    let _ = decode(&unit.rel_path, unit.bytes, unit.encoding, options);
                }
            }
            let (units, notes) = webdataset::units(&shard, None, None, &payload.bytes);
            for unit in units {
                assert!(
                    unit.rel_path.starts_with("shard-0000.tar:"),
                    "{}",
                    unit.rel_path
                );
                let _ = decode(&unit.rel_path, unit.bytes, unit.encoding, options);
            }
            assert!(notes.iter().all(|n| n.path.starts_with("shard-0000.tar")));
            let sealed = seal(bytes.clone());
            if let Ok(artifact) = decode_artifact::<IngestArtifact>(&sealed) {
                let _ = check_thumb_ranges(&artifact);
            }
            assert!(decode_artifact::<IngestArtifact>(&bytes[..bytes.len().min(7)]).is_err());
        });
        assert!(
            outcome.is_ok(),
            "panic on seed {seed}, round {round}: {} bytes starting {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(32)]
        );
    }
}
