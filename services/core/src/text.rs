//! Values' text appended to byte buffers: a page of peers answered as JSON writes hundreds of keys,
//! endpoints and prefixes, and the formatting machinery (`write!`) was much of their cost.

/// Appends the value's `Display` text, byte for byte, without the formatting machinery.
pub trait AppendText {
    fn append_text(&self, out: &mut Vec<u8>);
}
