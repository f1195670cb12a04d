//! GGUF header, metadata and tensor directory, read from bytes and validated.
//!
//! candle has a GGUF reader, but it reads tensor dimensions as `usize` (32 bits on wasm32, so a
//! hostile 2^32+1 silently becomes 1) and reports a bad tensor without naming it. In wasm a
//! failed allocation or an overflow panic kills the module, so this reader checks every length,
//! count and offset against the bytes actually present *before* allocating, does all size
//! arithmetic in checked `u64`, and names the offending key or tensor in its errors. It yields
//! candle's own `Content`, so the candle model builders take it unchanged.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::GgmlDType;

use crate::bail;
use crate::error::{Error, ErrorCode, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_TENSOR_DIMS: u32 = 4;
/// Arrays nest (an array of arrays of …); no real file goes deeper than 1, so 4 is generous.
const MAX_ARRAY_DEPTH: usize = 4;
/// Arrays of at least this many strings or numbers — a vocabulary, its scores, types and merges —
/// are validated where they lie and read from the file's bytes, instead of becoming one `Value`
/// (and one allocation per string) each: a 262k-token vocabulary as Values is tens of MB of heap
/// written once, read once by the tokenizer and dropped, most of a cold load's time and memory.
const IN_PLACE_MIN_ITEMS: u64 = 256;

/// ggml type ids, names and the subset candle can compute with.
/// Names follow ggml.h so that an error names the type the way llama.cpp tools print it.
const GGML_TYPE_NAMES: &[(u32, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (8, "Q8_0"),
    (9, "Q8_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (30, "BF16"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
];

pub fn ggml_type_name(id: u32) -> String {
    GGML_TYPE_NAMES
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("unknown type {id}"))
}

fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    use GgmlDType::*;
    Some(match id {
        0 => F32,
        1 => F16,
        2 => Q4_0,
        3 => Q4_1,
        6 => Q5_0,
        7 => Q5_1,
        8 => Q8_0,
        9 => Q8_1,
        10 => Q2K,
        11 => Q3K,
        12 => Q4K,
        13 => Q5K,
        14 => Q6K,
        15 => Q8K,
        30 => BF16,
        _ => return None,
    })
}

/// Bytes a tensor of `dtype` with `elements` elements occupies, or why it cannot exist.
pub fn tensor_byte_size(dtype: GgmlDType, elements: u64) -> Option<u64> {
    let block = dtype.block_size() as u64;
    if !elements.is_multiple_of(block) {
        return None;
    }
    (elements / block).checked_mul(dtype.type_size() as u64)
}

/// A parsed and validated GGUF file. `content` is candle's representation; the extra fields are
/// what the validation learned and the loaders need.
pub struct Gguf<'a> {
    pub content: Content,
    /// The large metadata arrays (see [`IN_PLACE_MIN_ITEMS`]), which `content` leaves out.
    pub arrays: HashMap<String, InPlaceArray<'a>>,
    pub version: u32,
    /// Bytes each tensor occupies in the file, by name (checked to lie inside it).
    pub tensor_bytes: HashMap<String, u64>,
    /// Where the metadata table ends (and the tensor table begins) in the file.
    pub metadata_end: usize,
}

/// A metadata array left in the file: `count` items of GGUF value type `item_ty` in `items`,
/// every one checked when the file was parsed (lengths in bounds, strings UTF-8, bools 0 or 1).
#[derive(Clone, Copy, Debug)]
pub struct InPlaceArray<'a> {
    item_ty: u32,
    count: usize,
    items: &'a [u8],
}

impl<'a> InPlaceArray<'a> {
    /// The items as strings; `None` if they are not strings.
    fn strings(&self) -> Option<impl Iterator<Item = &'a str>> {
        let mut rest = self.items;
        (self.item_ty == 8).then(|| {
            std::iter::from_fn(move || {
                let (len, tail) = rest.split_first_chunk::<8>()?;
                let (s, tail) = tail.split_at_checked(usize::try_from(u64::from_le_bytes(*len)).ok()?)?;
                rest = tail;
                // Checked when parsed: never the empty string in place of a bad one.
                Some(std::str::from_utf8(s).unwrap_or_default())
            })
        })
    }

    /// The items as fixed-size values of type `item_ty`, each from its little-endian bytes.
    fn numbers<const N: usize, T>(&self, item_ty: u32, from: fn([u8; N]) -> T) -> Option<Vec<T>> {
        (self.item_ty == item_ty).then(|| self.items.as_chunks::<N>().0.iter().map(|b| from(*b)).collect())
    }
}

impl<'a> Gguf<'a> {
    pub fn metadata(&self) -> Metadata<'_> {
        Metadata { values: &self.content.metadata, arrays: Some(&self.arrays) }
    }

    pub fn total_tensor_bytes(&self) -> u64 {
        self.tensor_bytes.values().sum()
    }

    /// A GGUF file with this one's metadata (tokenizer, chat template, hyperparameters) and no
    /// tensors; `bytes` is the file this was parsed from. The ONNX export ships it beside its
    /// graphs so the tokenizer is still read from GGUF metadata.
    pub fn metadata_only(&self, bytes: &[u8]) -> Vec<u8> {
        const HEADER: usize = 4 + 4 + 8 + 8;
        let mut out = Vec::with_capacity(self.metadata_end + 32);
        out.extend_from_slice(&bytes[..8]);
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&bytes[16..HEADER]);
        out.extend_from_slice(&bytes[HEADER..self.metadata_end]);
        out
    }
}

/// A cursor over the file's first bytes whose every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The whole file's length (`bytes` may be only its start).
    file_len: u64,
    /// A read went past `bytes` but not past the file: more of it would have been read.
    ran_out: bool,
}

impl<'a> Reader<'a> {
    /// Note, before failing a read of `n` bytes at `pos`, whether the file has them.
    fn note_short(&mut self, n: u64) {
        let in_file = (self.pos as u64).checked_add(n).is_some_and(|end| end <= self.file_len);
        self.ran_out |= in_file;
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            self.note_short(n);
            bail!(
                InvalidGguf,
                "file is truncated: {} needs {n} bytes at offset {}, only {} remain",
                what(),
                self.pos,
                self.remaining()
            );
        }
        let n = n as usize;
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed UTF-8 string, borrowed from the file.
    fn str(&mut self, what: &dyn Fn() -> String) -> Result<&'a str> {
        let len = self.u64(what)?;
        let raw = self.take(len, &|| format!("{} (a string of {len} bytes)", what()))?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s),
            Err(_) => bail!(InvalidGguf, "{} is not valid UTF-8", what()),
        }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        Ok(self.str(what)?.to_owned())
    }

    /// The array whose item type and count come next, left in place if it is large enough and of
    /// strings or numbers (see [`IN_PLACE_MIN_ITEMS`]); otherwise `None`, with nothing read.
    fn in_place_array(&mut self, what: &dyn Fn() -> String) -> Result<Option<InPlaceArray<'a>>> {
        let start = self.pos;
        let item_ty = self.u32(what)?;
        let count = self.u64(what)?;
        // Numbers, bools and strings; not arrays of arrays, nor unknown types (errors of `value`).
        if count < IN_PLACE_MIN_ITEMS || !matches!(item_ty, 0..=8 | 10..=12) {
            self.pos = start;
            return Ok(None);
        }
        self.check_count(count, min_value_bytes(item_ty), what)?;
        let items_start = self.pos;
        if item_ty == 8 {
            for i in 0..count {
                self.str(&|| format!("{} item {i}", what()))?;
            }
        } else {
            // A number's or bool's fewest bytes are its size.
            let raw = self.take(count * min_value_bytes(item_ty), what)?;
            if let Some(i) = raw.iter().position(|&b| item_ty == 7 && b > 1) {
                bail!(InvalidGguf, "{} item {i} is a bool with byte value {}", what(), raw[i]);
            }
        }
        Ok(Some(InPlaceArray { item_ty, count: count as usize, items: &self.bytes[items_start..self.pos] }))
    }

    /// Refuse an array whose declared length could not possibly fit in the remaining bytes,
    /// before allocating a `Vec` of that length.
    fn check_count(&mut self, count: u64, min_item_bytes: u64, what: &dyn Fn() -> String) -> Result<()> {
        let need = count.checked_mul(min_item_bytes);
        match need {
            Some(need) if need <= self.remaining() as u64 => Ok(()),
            _ => {
                self.note_short(need.unwrap_or(u64::MAX));
                bail!(
                InvalidGguf,
                    "{} declares {count} items, which cannot fit in the {} bytes left in the file (is it truncated or corrupt?)",
                    what(),
                    self.remaining()
                )
            }
        }
    }

    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(what)?[0]),
            1 => Value::I8(self.array::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!(InvalidGguf, "{} is a bool with byte value {b}", what()),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    bail!(InvalidGguf, "{} nests arrays deeper than {MAX_ARRAY_DEPTH}", what());
                }
                let item_ty = self.u32(what)?;
                let count = self.u64(what)?;
                self.check_count(count, min_value_bytes(item_ty), what)?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(item_ty, depth + 1, what)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            other => bail!(InvalidGguf, "{} has unknown value type {other}", what()),
        })
    }
}

/// The fewest bytes one value of this type can take; used to bound array lengths.
fn min_value_bytes(ty: u32) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,  // the length prefix of an empty string
        9 => 12, // item type + count of an empty array
        _ => 1,
    }
}

/// Parse and validate a whole GGUF file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Gguf<'_>> {
    parse_prefix(bytes, bytes.len() as u64)
}

/// [`parse`] from the first bytes of a file of `file_len` bytes: enough for the header, the
/// metadata and the tensor table (a few MB), not the weights. Tensors are checked against the
/// file's length, so a model can be described — and refused — before it is downloaded or read.
pub fn parse_prefix(bytes: &[u8], file_len: u64) -> Result<Gguf<'_>> {
    parse_from(&mut Reader { bytes, pos: 0, file_len, ran_out: false })
}

/// Where the tensor data begins in a file of `file_len` bytes that starts with `prefix`:
/// `None` while the prefix ends inside the header, the metadata or the tensor table (read more
/// and ask again); the error of [`parse_prefix`] for a file edgellm cannot read.
pub fn data_start(prefix: &[u8], file_len: u64) -> Result<Option<usize>> {
    let mut r = Reader { bytes: prefix, pos: 0, file_len, ran_out: false };
    match parse_from(&mut r) {
        // Within the file's length, so within usize.
        Ok(g) => Ok(Some(g.content.tensor_data_offset as usize)),
        Err(_) if r.ran_out => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_from<'a>(r: &mut Reader<'a>) -> Result<Gguf<'a>> {
    let (bytes, file_len) = (r.bytes, r.file_len);
    if (bytes.len() as u64) > file_len {
        bail!(InvalidRequest, "{} bytes given as the start of a file of {file_len}", bytes.len());
    }
    let magic = r.array::<4>(&|| "the GGUF magic".into())?;
    if &magic != MAGIC {
        bail!(InvalidGguf, "not a GGUF file: it starts with {:02x?}, a GGUF file starts with \"GGUF\"", magic);
    }
    let version = r.u32(&|| "the GGUF version".into())?;
    let versioned_magic = match version {
        2 => VersionedMagic::GgufV2,
        3 => VersionedMagic::GgufV3,
        v => bail!(InvalidGguf, "GGUF version {v} is not supported (edgellm reads versions 2 and 3)"),
    };
    let tensor_count = r.u64(&|| "the tensor count".into())?;
    let kv_count = r.u64(&|| "the metadata count".into())?;
    // A metadata entry needs at least a key length, a type and one byte; a tensor entry a name
    // length, a dimension count, a type and an offset.
    r.check_count(kv_count, 8 + 4 + 1, &|| "the metadata table".into())?;
    r.check_count(tensor_count, 8 + 4 + 4 + 8, &|| "the tensor table".into())?;

    let mut metadata = HashMap::with_capacity(kv_count as usize);
    let mut arrays = HashMap::new();
    for i in 0..kv_count {
        let key = r.string(&|| format!("metadata key #{i}"))?;
        let what = || format!("metadata value '{key}'");
        let ty = r.u32(&what)?;
        if metadata.contains_key(&key) || arrays.contains_key(&key) {
            bail!(InvalidGguf, "metadata key '{key}' appears twice");
        }
        if let Some(array) = if ty == 9 { r.in_place_array(&what)? } else { None } {
            arrays.insert(key, array);
        } else {
            let value = r.value(ty, 0, &what)?;
            metadata.insert(key, value);
        }
    }

    let metadata_end = r.pos;
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => *a as u64,
        Some(other) => bail!(InvalidGguf, "general.alignment must be a power of two (u32), found {other:?}"),
    };

    struct RawTensor {
        name: String,
        dims: Vec<u64>,
        type_id: u32,
        offset: u64,
    }
    let mut raw_tensors = Vec::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let name = r.string(&|| format!("the name of tensor #{i}"))?;
        let what = || format!("tensor '{name}'");
        let n_dims = r.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_TENSOR_DIMS {
            bail!(InvalidGguf, "tensor '{name}' has {n_dims} dimensions (1 to {MAX_TENSOR_DIMS} allowed)");
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let type_id = r.u32(&what)?;
        let offset = r.u64(&what)?;
        raw_tensors.push(RawTensor { name, dims, type_id, offset });
    }

    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
    let data_len = file_len.saturating_sub(data_start);

    let mut tensor_infos = HashMap::with_capacity(raw_tensors.len());
    let mut tensor_bytes = HashMap::with_capacity(raw_tensors.len());
    for t in raw_tensors {
        let name = t.name;
        let Some(dtype) = ggml_dtype(t.type_id) else {
            bail!(
                UnsupportedTensorType,
                "tensor '{name}' uses quantization {}, which edgellm cannot run; supported types are \
                 F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K",
                ggml_type_name(t.type_id)
            );
        };
        let elements = t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(elements) = elements.filter(|&e| e > 0 && e <= usize::MAX as u64) else {
            bail!(InvalidGguf, "tensor '{name}' has dimensions {:?}, whose element count is zero or overflows", t.dims);
        };
        let Some(size) = tensor_byte_size(dtype, elements) else {
            bail!(
                InvalidGguf,
                "tensor '{name}' has {elements} elements, not a multiple of the {:?} block size {}",
                dtype,
                dtype.block_size()
            );
        };
        if t.offset % alignment != 0 {
            bail!(InvalidGguf, "tensor '{name}' starts at offset {} which is not aligned to {alignment}", t.offset);
        }
        match t.offset.checked_add(size) {
            Some(end) if end <= data_len => {}
            _ => bail!(
                InvalidGguf,
                "tensor '{name}' needs bytes {}..{} of the data section, but the file only has {data_len} \
                 (is the file truncated?)",
                t.offset,
                t.offset as u128 + size as u128
            ),
        }
        // candle's Shape is outermost-first; GGUF stores innermost-first.
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        let info = TensorInfo { ggml_dtype: dtype, shape: shape.into(), offset: t.offset };
        if tensor_infos.insert(name.clone(), info).is_some() {
            bail!(InvalidGguf, "tensor '{name}' appears twice");
        }
        tensor_bytes.insert(name, size);
    }

    Ok(Gguf {
        content: Content { magic: versioned_magic, metadata, tensor_infos, tensor_data_offset: data_start },
        arrays,
        version,
        tensor_bytes,
        metadata_end,
    })
}

/// Typed access to GGUF metadata with errors that name the missing key: the values, and the
/// large arrays left in the file's bytes.
#[derive(Clone, Copy)]
pub struct Metadata<'a> {
    values: &'a HashMap<String, Value>,
    arrays: Option<&'a HashMap<String, InPlaceArray<'a>>>,
}

impl<'a> Metadata<'a> {
    /// Metadata that is all values (as candle's `Content` holds it).
    pub fn of_values(values: &'a HashMap<String, Value>) -> Self {
        Self { values, arrays: None }
    }

    /// A scalar or small array value; the large arrays are read through the typed accessors.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.values.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key) || self.in_place(key).is_some()
    }

    fn in_place(&self, key: &str) -> Option<&'a InPlaceArray<'a>> {
        self.arrays?.get(key)
    }

    fn expect(&self, key: &str) -> Result<&'a Value> {
        self.values
            .get(key)
            .ok_or_else(|| Error::new(ErrorCode::MissingMetadata, format!("the GGUF metadata has no '{key}'")))
    }

    fn wrong_type(key: &str, want: &str, got: &Value) -> Error {
        Error::new(
            ErrorCode::MissingMetadata,
            format!("GGUF metadata '{key}' should be {want}, found {:?}", got.value_type()),
        )
    }

    pub fn string(&self, key: &str) -> Result<&'a str> {
        match self.expect(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::wrong_type(key, "a string", v)),
        }
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>> {
        self.get(key).map(|_| self.string(key)).transpose()
    }

    /// Any non-negative integer type, as u64.
    pub fn uint(&self, key: &str) -> Result<u64> {
        let v = self.expect(key)?;
        let n: Option<u64> = match v {
            Value::U8(x) => Some(*x as u64),
            Value::U16(x) => Some(*x as u64),
            Value::U32(x) => Some(*x as u64),
            Value::U64(x) => Some(*x),
            Value::I8(x) => u64::try_from(*x).ok(),
            Value::I16(x) => u64::try_from(*x).ok(),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.ok_or_else(|| Self::wrong_type(key, "a non-negative integer", v))
    }

    pub fn opt_uint(&self, key: &str) -> Result<Option<u64>> {
        self.get(key).map(|_| self.uint(key)).transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Self::wrong_type(key, "a bool", v)),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value]> {
        match self.expect(key)? {
            Value::Array(items) => Ok(items),
            v => Err(Self::wrong_type(key, "an array", v)),
        }
    }

    /// The items of array `key` as `T`: read in place with `in_place`, or from its values with
    /// `item` (`None` for an item of another type).
    fn typed_array<T>(
        &self,
        key: &str,
        want: &str,
        in_place: impl Fn(&InPlaceArray<'a>) -> Option<Vec<T>>,
        item: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Vec<T>> {
        let wrong = || Error::new(ErrorCode::MissingMetadata, format!("GGUF metadata '{key}' should be {want}"));
        if let Some(array) = self.in_place(key) {
            let items = in_place(array).ok_or_else(wrong)?;
            return if items.len() == array.count { Ok(items) } else { Err(wrong()) };
        }
        self.array(key)?.iter().map(|v| item(v).ok_or_else(|| Self::wrong_type(key, want, v))).collect()
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<&'a str>> {
        let item = |v: &'a Value| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        self.typed_array(key, "an array of strings", |a| Some(a.strings()?.collect()), item)
    }

    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let item = |v: &Value| match v {
            Value::F32(x) => Some(*x),
            _ => None,
        };
        self.typed_array(key, "an array of f32", |a| a.numbers(6, f32::from_le_bytes), item)
    }

    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let item = |v: &Value| match v {
            Value::I32(x) => Some(*x),
            _ => None,
        };
        self.typed_array(key, "an array of i32", |a| a.numbers(5, i32::from_le_bytes), item)
    }
}
