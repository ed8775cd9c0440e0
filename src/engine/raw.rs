//! Pages read without a value per record. A page's text is parsed once into
//! where its records lie (`serde_json`'s `RawValue`); a record whose text is
//! exactly what `serde_json` would write for it ([`canonical`]) goes to the
//! writer as that text, and only the few fields the sync strategies read
//! ([`fields_read`]) are parsed from it. Anything unusual (a record in another
//! spelling, a page of an unexpected shape) takes the slow way: the page or
//! record parsed in full, as before, so output and errors stay the same.
//!
//! The same scan checks each record against its stream's [`Shape`]: a value
//! the schema declares an array or an object (or null) that is some other JSON
//! type makes the record, and its page, go the slow way, where the check says
//! what is wrong.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::protocol::RecordRef;
use crate::streams::{Records, StreamDef};

/// Objects with more keys than this are not checked for repeated keys (the
/// check is quadratic) and go the slow way instead.
const MAX_KEYS: usize = 64;

/// The records of a page: the page's text and where each record lies in it,
/// or the record parsed, and per record the fields strategies read.
pub struct PageRecords {
    text: String,
    records: Vec<Rec>,
    /// Per record, an object with the fields of [`fields_read`] it has: what
    /// the sync strategies are given to decide on (they read no others).
    pub views: Vec<Value>,
}

enum Rec {
    /// A canonical record, at this range of `text`.
    Raw(Range<usize>),
    Value(Value),
}

impl PageRecords {
    /// Records parsed in full (a page read the slow way, or made by the
    /// connector).
    pub fn from_values(def: &StreamDef, records: Vec<Value>) -> Self {
        let fields = fields_read(def);
        let views = records.iter().map(|r| view_of_value(r, &fields)).collect();
        PageRecords {
            text: String::new(),
            records: records.into_iter().map(Rec::Value).collect(),
            views,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The page's text (empty for records parsed in full).
    pub fn into_text(self) -> String {
        self.text
    }

    /// Record `index`, as text when it is canonical.
    pub fn get(&self, index: usize) -> RecordRef<'_> {
        match &self.records[index] {
            Rec::Raw(range) => RecordRef::Raw(&self.text[range.clone()]),
            Rec::Value(value) => RecordRef::Value(value),
        }
    }
}

/// The fields of a record the sync strategies read: the cursor, the primary
/// key (to skip records already read) and the field a child's rows are
/// ordered by. A strategy that reads another field must add it here.
pub fn fields_read(def: &StreamDef) -> Vec<&str> {
    let mut fields: Vec<&str> = Vec::new();
    let cursor = def.cursor.as_ref().map(|c| c.field.as_str());
    for field in cursor
        .into_iter()
        .chain(def.cursor_field())
        .chain(def.primary_key.iter().map(String::as_str))
        .chain(def.members.iter().map(|m| m.field.as_str()))
    {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields
}

fn view_of_value(record: &Value, fields: &[&str]) -> Value {
    let mut view = Map::new();
    for field in fields {
        if let Some(value) = record.get(*field) {
            view.insert((*field).to_string(), value.clone());
        }
    }
    Value::Object(view)
}

/// What a stream's schema declares about the kinds of a record's values,
/// as far as they are checked: where it says a value is an array or an object
/// (null allowed or not), any other JSON type there makes the record
/// malformed, and its page with it (an error, retried like a broken body,
/// never records passed on with a string where a list belongs). Values the
/// schema declares as scalars, or without a type, are not checked, nor is what
/// lies below them; an object's properties and an array's items are checked
/// where the schema declares them, at any depth.
#[derive(Debug, Default)]
pub struct Shape {
    /// The kinds the value may be (bits of [`Kind`]); 0 for any.
    kinds: u8,
    /// Of an object: its properties whose kind is declared.
    properties: Vec<Property>,
    /// Bit `n` set when a property's key is `n` bytes long (63: longer),
    /// so most keys are ruled out without a look at the properties.
    key_lengths: u64,
    /// Of an array: its items' kind, when declared.
    items: Option<Box<Shape>>,
}

#[derive(Debug)]
struct Property {
    name: String,
    /// The key as `serde_json` writes it between its quotes, as a
    /// canonical record spells it.
    raw: Box<[u8]>,
    shape: Shape,
}

impl Property {
    /// Whether `key`, as a canonical record spells it, names this property:
    /// length and first byte first, which rule out nearly every other key
    /// without a call to compare the rest.
    fn is(&self, key: &[u8]) -> bool {
        self.raw.len() == key.len() && self.raw.first() == key.first() && *self.raw == *key
    }
}

/// The JSON kinds a [`Shape`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Object = 1,
    Array = 2,
    Null = 4,
    /// A string, a number or a boolean.
    Scalar = 8,
}

impl Kind {
    /// The kind of the JSON value that starts with `byte`.
    fn of_first_byte(byte: u8) -> Kind {
        match byte {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'n' => Kind::Null,
            _ => Kind::Scalar,
        }
    }

    fn of(value: &Value) -> Kind {
        match value {
            Value::Object(_) => Kind::Object,
            Value::Array(_) => Kind::Array,
            Value::Null => Kind::Null,
            _ => Kind::Scalar,
        }
    }
}

impl Shape {
    /// Any value: nothing declared.
    const ANY: Shape = Shape {
        kinds: 0,
        properties: Vec::new(),
        key_lengths: 0,
        items: None,
    };

    /// The shape `schema` (a JSON Schema of `type`, `properties` and `items`)
    /// declares.
    pub fn of(schema: &Value) -> Shape {
        let kinds = declared_kinds(schema);
        let mut shape = Shape {
            kinds,
            ..Shape::default()
        };
        if kinds & Kind::Object as u8 != 0 {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, property) in properties.into_iter().flatten() {
                let declared = Shape::of(property);
                if declared.kinds != 0 {
                    let quoted = serde_json::to_string(name).expect("a string serializes");
                    let raw: Box<[u8]> = quoted.as_bytes()[1..quoted.len() - 1].into();
                    shape.key_lengths |= length_bit(&raw);
                    shape.properties.push(Property {
                        name: name.clone(),
                        raw,
                        shape: declared,
                    });
                }
            }
        }
        if kinds & Kind::Array as u8 != 0 {
            let items = schema.get("items").map(Shape::of);
            shape.items = items.filter(|items| items.kinds != 0).map(Box::new);
        }
        shape
    }

    /// `Some` when a value of `kind` is of this shape.
    fn admits(&self, kind: Kind) -> Option<()> {
        (self.kinds == 0 || self.kinds & kind as u8 != 0).then_some(())
    }

    /// Where `value` is not of this shape, the first place: its path and
    /// what is there; `None` when it is.
    pub fn mismatch(&self, value: &Value) -> Option<String> {
        let mut path = String::new();
        self.find_mismatch(value, &mut path)
    }

    fn find_mismatch(&self, value: &Value, path: &mut String) -> Option<String> {
        if self.admits(Kind::of(value)).is_none() {
            let mut shown = value.to_string();
            if shown.len() > 60 {
                let cut = (0..=57)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            let at = if path.is_empty() { "the record" } else { path };
            return Some(format!(
                "{at} is {shown} where the schema declares {}",
                describe(self.kinds)
            ));
        }
        let depth = path.len();
        match value {
            Value::Object(map) => {
                for property in &self.properties {
                    if let Some(inner) = map.get(&property.name) {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(&property.name);
                        let found = property.shape.find_mismatch(inner, path);
                        if found.is_some() {
                            return found;
                        }
                        path.truncate(depth);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(shape) = &self.items {
                    for (index, item) in items.iter().enumerate() {
                        path.push_str(&format!("[{index}]"));
                        let found = shape.find_mismatch(item, path);
                        if found.is_some() {
                            return found;
                        }
                        path.truncate(depth);
                    }
                }
            }
            _ => {}
        }
        None
    }
}

/// The bit of [`Shape::key_lengths`] for `key`.
fn length_bit(key: &[u8]) -> u64 {
    1 << key.len().min(63)
}

/// The kinds a schema's `type` allows, when it declares only containers
/// (and null); 0, nothing checked, when it allows a scalar or has no type.
fn declared_kinds(schema: &Value) -> u8 {
    let names: Vec<&str> = match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => return 0,
    };
    let mut kinds = 0;
    for name in names {
        kinds |= match name {
            "object" => Kind::Object as u8,
            "array" => Kind::Array as u8,
            "null" => Kind::Null as u8,
            _ => return 0,
        };
    }
    if kinds & (Kind::Object as u8 | Kind::Array as u8) == 0 {
        return 0;
    }
    kinds
}

/// `kinds` in words: "an array", "an object or null".
fn describe(kinds: u8) -> String {
    let names: Vec<&str> = [
        (Kind::Object, "an object"),
        (Kind::Array, "an array"),
        (Kind::Null, "null"),
    ]
    .into_iter()
    .filter(|(kind, _)| kinds & *kind as u8 != 0)
    .map(|(_, name)| name)
    .collect();
    names.join(" or ")
}

/// A page read the fast way: its records, and its `_links` if it is an
/// object that has them.
pub struct FastPage {
    pub records: PageRecords,
    pub links: Option<Value>,
    /// The page's count of the read's records (`StreamDef::count`).
    pub count: Option<u64>,
    /// The records key was missing: malformed, unless the page's count says
    /// the read is empty.
    pub missing: bool,
}

/// Reads `text` as a page of `def` the fast way; `None` when it is not of
/// the expected shape (or not JSON): the caller then parses it in full, which
/// also says what is wrong.
pub fn read_page(def: &StreamDef, text: String) -> std::result::Result<FastPage, String> {
    let Some((ranges, links, count, missing)) = locate(def, &text) else {
        return Err(text);
    };
    let Some((records, views)) = read_records(def, &text, ranges) else {
        return Err(text);
    };
    Ok(FastPage {
        records: PageRecords {
            text,
            records,
            views,
        },
        links,
        count,
        missing,
    })
}

/// The records at `ranges` of `text` and their views; `None` if one of them
/// cannot be parsed.
fn read_records(
    def: &StreamDef,
    text: &str,
    ranges: Vec<Range<usize>>,
) -> Option<(Vec<Rec>, Vec<Value>)> {
    let fields = fields_read(def);
    let shape = Shape::of(&def.schema);
    let mut records = Vec::with_capacity(ranges.len());
    let mut views = Vec::with_capacity(ranges.len());
    let mut scan = Scanner::default();
    for range in ranges {
        let record = &text[range.clone()];
        match scan.canonical(record, &fields, &shape) {
            Some(found) => {
                let mut view = Map::new();
                for (field, at) in found {
                    let value = serde_json::from_str(&record[at]).ok()?;
                    view.insert(fields[field].to_string(), value);
                }
                views.push(Value::Object(view));
                records.push(Rec::Raw(range));
            }
            // Not canonical, or not of its shape: parsed, and checked again.
            None => {
                let value = serde_json::from_str::<Value>(record).ok()?;
                if shape.mismatch(&value).is_some() {
                    return None;
                }
                views.push(view_of_value(&value, &fields));
                records.push(Rec::Value(value));
            }
        }
    }
    Some((records, views))
}

/// Where the records of a page lie in `text` (each an object), its
/// `_links`, and whether the records key was missing; `None` for a page of
/// another shape.
#[allow(clippy::type_complexity)]
fn locate(
    def: &StreamDef,
    text: &str,
) -> Option<(Vec<Range<usize>>, Option<Value>, Option<u64>, bool)> {
    let key = match &def.records {
        Records::Key(key) => Some(key.as_str()),
        _ => None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let top = TopSeed {
        key,
        count: def.count.as_deref(),
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    let at = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    };
    // The whole page, without the whitespace JSON allows around it.
    let whole = || {
        let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
        let start = text.len() - trimmed.len();
        let trimmed = trimmed.trim_end_matches([' ', '\t', '\n', '\r']);
        start..start + trimmed.len()
    };
    let (ranges, links, count, missing) = match (&def.records, top) {
        (
            Records::Key(_),
            Top::Object {
                records,
                links,
                count,
            },
        ) => match records {
            Some(Some(items)) => (items.iter().map(|r| at(r)).collect(), links, count, false),
            Some(None) => return None,
            None => (Vec::new(), links, count, true),
        },
        (Records::Array | Records::ArrayOrObject, Top::Array(items)) => {
            (items.iter().map(|r| at(r)).collect(), None, None, false)
        }
        (Records::ArrayOrObject | Records::Object, Top::Object { links, count, .. }) => {
            (vec![whole()], links, count, false)
        }
        _ => return None,
    };
    let objects = ranges
        .iter()
        .all(|r| text.as_bytes().get(r.start) == Some(&b'{'));
    objects.then_some((ranges, links, count, missing))
}

/// The top of a page: an object (its records array, if the records are under
/// a key, and its `_links`), an array of records, or something else.
enum Top<'a> {
    Object {
        /// `Some(None)`: the key holds something other than an array.
        records: Option<Option<Vec<&'a RawValue>>>,
        links: Option<Value>,
        count: Option<u64>,
    },
    Array(Vec<&'a RawValue>),
    Other,
}

struct TopSeed<'k> {
    key: Option<&'k str>,
    /// A top-level count to keep.
    count: Option<&'k str>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Top<'de>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a page")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut records = None;
        let mut links = None;
        let mut count = None;
        // A repeated key counts once, the last time, as in a `Value`.
        while let Some(Key(key)) = map.next_key()? {
            if Some(&*key) == self.key {
                records = Some(map.next_value::<Items>()?.0);
            } else if key == "_links" {
                links = Some(map.next_value::<Value>()?);
            } else if Some(&*key) == self.count {
                count = map.next_value::<Value>()?.as_u64();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Top::Object {
            records,
            links,
            count,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Top::Array(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other)
    }
}

/// A map key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

/// The records array under the records key: its items unparsed, or `None`
/// when the key holds something else.
struct Items<'de>(Option<Vec<&'de RawValue>>);

impl<'de> de::Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(Items(Some(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items<'de>, E> {
                Ok(Items(None))
            }
        }
        de.deserialize_any(ItemsVisitor)
    }
}

/// Checks that a record's text (valid JSON, as `serde_json` already read it)
/// is canonical: what `serde_json` writes for the `Value` it parses to, so
/// it can be written as is. That is: no whitespace, no repeated keys in an
/// object, strings escaped as `serde_json` escapes them (`\"`, `\\`, `\b`,
/// `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx`, nothing
/// else), and numbers spelled as it writes them.
#[derive(Default)]
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Keys of the objects being scanned, innermost last.
    keys: Vec<&'a [u8]>,
    /// Where the top-level values of `fields` lie: (index in `fields`, range).
    found: Vec<(usize, Range<usize>)>,
}

/// `None`: not canonical.
type Canonical = Option<()>;

impl<'a> Scanner<'a> {
    /// Whether `record` is canonical and of its `shape`, and if so where its
    /// top-level values of `fields` lie.
    fn canonical<'s>(
        &'s mut self,
        record: &'a str,
        fields: &[&str],
        shape: &Shape,
    ) -> Option<std::vec::Drain<'s, (usize, Range<usize>)>> {
        self.bytes = record.as_bytes();
        self.at = 0;
        self.keys.clear();
        self.found.clear();
        let result = self.declared(Some(fields), shape);
        match result {
            Some(()) if self.at == self.bytes.len() => Some(self.found.drain(..)),
            _ => None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// A value the schema declares nothing about; `fields` for the record
    /// itself, whose values of them are noted.
    fn value(&mut self, fields: Option<&[&str]>) -> Canonical {
        match self.peek()? {
            b'{' => self.object(fields, &Shape::ANY),
            b'[' => self.array(None),
            b'"' => self.string().map(|_| ()),
            b't' | b'n' => self.skip(4),
            b'f' => self.skip(5),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A value of `shape`: of a kind it admits, its properties or items
    /// checked where declared. (Kept apart from [`Self::value`], so values
    /// the schema declares nothing about cost what they did before.)
    fn declared(&mut self, fields: Option<&[&str]>, shape: &Shape) -> Canonical {
        let first = self.peek()?;
        shape.admits(Kind::of_first_byte(first))?;
        match first {
            b'{' => self.object(fields, shape),
            b'[' => self.array(shape.items.as_deref()),
            _ => self.value(fields),
        }
    }

    fn skip(&mut self, n: usize) -> Canonical {
        self.at += n;
        (self.at <= self.bytes.len()).then_some(())
    }

    fn expect(&mut self, byte: u8) -> Canonical {
        (self.peek()? == byte).then_some(())?;
        self.at += 1;
        Some(())
    }

    /// An object of `shape` ([`Shape::ANY`] where nothing is declared).
    fn object(&mut self, fields: Option<&[&str]>, shape: &Shape) -> Canonical {
        self.at += 1;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let first = self.keys.len();
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            // Repeated keys: a `Value` keeps one of them.
            if self.keys.len() - first >= MAX_KEYS || self.keys[first..].contains(&key) {
                return None;
            }
            self.keys.push(key);
            self.expect(b':')?;
            let start = self.at;
            let declared = match shape.key_lengths & length_bit(key) {
                0 => None,
                _ => shape.properties.iter().find(|property| property.is(key)),
            };
            match declared {
                Some(property) => self.declared(None, &property.shape)?,
                None => self.value(None)?,
            }
            if let Some(field) =
                fields.and_then(|fields| fields.iter().position(|field| field.as_bytes() == key))
            {
                self.found.push((field, start..self.at));
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    self.keys.truncate(first);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array; `items`, its items' shape where declared.
    fn array(&mut self, items: Option<&Shape>) -> Canonical {
        self.at += 1;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            match items {
                Some(items) => self.declared(None, items)?,
                None => self.value(None)?,
            }
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string; returns its text between the quotes, as written.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.at += 1;
        let start = self.at;
        loop {
            self.skip_plain();
            let byte = self.peek()?;
            match byte {
                b'"' => {
                    self.at += 1;
                    return Some(&self.bytes[start..self.at - 1]);
                }
                b'\\' => {
                    match *self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                            let lower = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                            // serde_json writes \u00xx (lowercase) for control
                            // characters without a short escape, nothing else.
                            let control = hex[0] == b'0'
                                && hex[1] == b'0'
                                && (hex[2] == b'0' || hex[2] == b'1')
                                && lower(hex[3]);
                            let short = hex[2] == b'0'
                                && matches!(hex[3], b'8' | b'9' | b'a' | b'c' | b'd');
                            if !control || short {
                                return None;
                            }
                            self.at += 6;
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
    }

    /// Skips, eight bytes at a time, to the next byte that ends a string or
    /// needs a look: `"`, `\\` or a control character (SWAR, as
    /// `serde_json` does: the lowest flagged byte is exact).
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let flagged = zero_byte(word ^ (ONES * u64::from(b'"')))
                | zero_byte(word ^ (ONES * u64::from(b'\\')))
                | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
            if flagged != 0 {
                self.at += (flagged.trailing_zeros() / 8) as usize;
                return;
            }
            self.at += 8;
        }
    }

    fn number(&mut self) -> Canonical {
        let start = self.at;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let token = &self.bytes[start..self.at];
        let digits = token.strip_prefix(b"-").unwrap_or(token);
        // A short integer is written as read (JSON has no leading zeros); a
        // float, a long integer or -0 is checked by writing it again.
        let plain = !digits.is_empty()
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit)
            && token != b"-0";
        if plain {
            return Some(());
        }
        let token = std::str::from_utf8(token).ok()?;
        let value: Value = serde_json::from_str(token).ok()?;
        (serde_json::to_string(&value).ok().as_deref() == Some(token)).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> bool {
        Scanner::default()
            .canonical(text, &[], &Shape::default())
            .is_some()
    }

    /// Canonical exactly when writing the parsed value gives the text back.
    #[test]
    fn canonical_is_what_serde_json_writes() {
        let cases = [
            r#"{}"#,
            r#"{"a":1,"b":[1,2,{"c":null}],"d":true,"e":false}"#,
            r#"{"a":"é \" \\ \n \r \t \b \f \u0001 \u001f \u007f"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u000A"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1},"b":{"b":1}}"#,
            r#"{"a":[{"k":1},{"k":2}]}"#,
            r#"{"a": 1}"#,
            r#"{"a":1.5,"b":1.0,"c":-0.25}"#,
            r#"{"a":1.50}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1E3}"#,
            r#"{"a":1e20}"#,
            r#"{"a":-0}"#,
            r#"{"a":0,"b":-1,"c":123456789012345678}"#,
            r#"{"a":18446744073709551615}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775808}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":[],"b":{},"c":""}"#,
            r#"{"long key, past eight bytes":"abcdefghijklmnop\"qrstuvwx\\yz\u0001abcdefgh"}"#,
            r#"{"a":"abcdefghijklm\/nopqrstuvwxyz"}"#,
            r#"{"a":"abcdefghijklmnopqrstuvwxyzé€😀abcdefghijklmnopqrstuvwxyz\u00e9"}"#,
        ];
        for text in cases {
            let value: Value = serde_json::from_str(text).unwrap();
            let written = serde_json::to_string(&value).unwrap();
            assert_eq!(canonical(text), written == text, "{text} → {written}");
        }
        let many: Vec<String> = (0..MAX_KEYS + 1).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(!canonical(&format!("{{{}}}", many.join(","))));
    }

    #[test]
    fn fields_are_found_at_the_top_only() {
        let text = r#"{"x":{"id":"inner"},"id":"outer","at":[1,{"at":2}],"n":5}"#;
        let mut scanner = Scanner::default();
        let found: Vec<(usize, Range<usize>)> = scanner
            .canonical(text, &["id", "at", "missing"], &Shape::default())
            .unwrap()
            .collect();
        let values: Vec<(usize, &str)> = found.into_iter().map(|(i, r)| (i, &text[r])).collect();
        assert_eq!(values, [(0, r#""outer""#), (1, r#"[1,{"at":2}]"#)]);
    }
}
