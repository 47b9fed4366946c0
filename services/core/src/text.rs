//! Values' text appended to byte buffers: a page of peers answered as JSON writes hundreds of keys,
//! endpoints and prefixes, and the formatting machinery (`write!`) was much of their cost.

/// Appends the value's `Display` text, byte for byte, without the formatting machinery. The text of
/// every implementation is printable ASCII without `"` or `\` (base64, addresses, digits), so it
/// stands in a JSON string as itself.
pub trait AppendText {
    fn append_text(&self, out: &mut Vec<u8>);

    /// Appends the text as a JSON string: between quotes, with nothing to escape.
    fn append_json_string(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        self.append_text(out);
        out.push(b'"');
    }
}
