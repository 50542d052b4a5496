//! The MIME tree of a raw message: where every part's header and body are.
//!
//! The scan follows RFC 2045/2046 and, where the RFCs leave room, what
//! mainstream IMAP servers do with broken mail (the golden test compares with
//! Dovecot byte for byte):
//!
//! - a boundary line is `--` followed by one of the open boundaries as a
//!   prefix (the longest one wins); a line that also has `--` right after the
//!   boundary closes that multipart;
//! - the line break before a boundary line belongs to the boundary, not to
//!   the part before it;
//! - a boundary of an outer multipart closes every part inside it, even those
//!   whose own closing boundary never came;
//! - a part's header is cut short by a boundary line of an outer multipart;
//! - `Content-*` fields count only in a MIME part (a multipart child, or a
//!   header with `MIME-Version` or `Content-Type`);
//! - a multipart without a usable boundary, or whose boundary never occurs,
//!   has no children;
//! - nesting deeper than [`Limits::max_depth`] or more than
//!   [`Limits::max_parts`] parts stops the tree: the part that would have
//!   opened another level keeps its bytes as a single leaf.

use std::ops::Range;

use crate::header::{self, HeaderField, Line};
use crate::lex::{Lexer, Step};

/// Bounds on the MIME tree, so that hostile mail cannot make the tree (and
/// the recursion over it) grow without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Nesting levels of multipart and message/rfc822 parts (default 100,
    /// as Dovecot: deeper parts are kept as opaque leaves).
    pub max_depth: usize,
    /// Parts in one message (default 10 000, as Dovecot).
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_parts: 10_000,
        }
    }
}

/// What a part contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// A leaf (text, image, application ... or an opaque part).
    Leaf,
    /// A multipart and its children (possibly none, for broken mail).
    Multipart(Vec<Part>),
    /// A message/rfc822 part and the message inside it.
    Message(Box<Part>),
}

/// One part of the MIME tree (the root is the whole message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The header block, including the empty line that ends it.
    pub header: Range<usize>,
    /// The body.
    pub body: Range<usize>,
    /// The header fields.
    pub fields: Vec<HeaderField>,
    /// What the part contains.
    pub kind: PartKind,
    /// The part is a MIME entity: its `Content-*` fields are meaningful.
    pub is_mime: bool,
    /// The part was meant to nest further but a [`Limits`] bound stopped it.
    pub overflow: bool,
    pub(crate) text: bool,
    pub(crate) multipart: bool,
}

impl Part {
    /// The first field named `name` (ASCII case ignored).
    pub fn field(&self, raw: &[u8], name: &str) -> Option<&HeaderField> {
        self.fields.iter().find(|f| f.is(raw, name))
    }

    /// Whether the part is a multipart (it may still have no children when
    /// its boundary is missing or never occurs).
    pub fn is_multipart(&self) -> bool {
        self.multipart
    }

    /// Whether the part is text (`text/*`, or no usable Content-Type).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The children of a multipart (empty for other parts).
    pub fn children(&self) -> &[Part] {
        match &self.kind {
            PartKind::Multipart(children) => children,
            _ => &[],
        }
    }
}

const FLAG_TEXT: u8 = 1;
const FLAG_MULTIPART: u8 = 2;
const FLAG_RFC822: u8 = 4;
const FLAG_DIGEST: u8 = 8;

struct Node {
    parent: Option<usize>,
    children: Vec<usize>,
    depth: usize,
    header_start: usize,
    body_start: usize,
    body_end: Option<usize>,
    fields: Vec<HeaderField>,
    flags: u8,
    is_mime: bool,
    overflow: bool,
    /// The header was cut by an outer boundary: the body is empty.
    cut: bool,
}

struct Boundary {
    text: Vec<u8>,
    part: usize,
}

struct Scanner<'a> {
    data: &'a [u8],
    limits: Limits,
    nodes: Vec<Node>,
    boundaries: Vec<Boundary>,
}

enum Next {
    Header(usize, usize),
    ToBoundary(usize, usize),
    ToEof(usize),
    Done,
}

/// Scans `raw` into its MIME tree.
pub fn scan(raw: &[u8], limits: Limits) -> Part {
    let mut scanner = Scanner {
        data: raw,
        limits,
        nodes: Vec::new(),
        boundaries: Vec::new(),
    };
    scanner.new_node(None, 0, false);
    let mut next = Next::Header(0, 0);
    loop {
        next = match next {
            Next::Header(node, pos) => scanner.header(node, pos),
            Next::ToBoundary(node, pos) => scanner.scan_to_boundary(node, pos),
            Next::ToEof(node) => {
                scanner.close_up_to(node, None, raw.len());
                Next::Done
            }
            Next::Done => break,
        };
    }
    scanner.build(0)
}

impl Scanner<'_> {
    fn new_node(&mut self, parent: Option<usize>, start: usize, is_mime: bool) -> usize {
        let id = self.nodes.len();
        let depth = parent.map_or(0, |p| self.nodes[p].depth + 1);
        self.nodes.push(Node {
            parent,
            children: Vec::new(),
            depth,
            header_start: start,
            body_start: start,
            body_end: None,
            fields: Vec::new(),
            flags: 0,
            is_mime,
            overflow: false,
            cut: false,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        id
    }

    fn too_deep(&self, node: usize) -> bool {
        self.nodes[node].depth + 1 >= self.limits.max_depth
            || self.nodes.len() >= self.limits.max_parts
    }

    /// The open boundary that the line at `pos` starts with, if any:
    /// (index in the stack, closes the multipart).
    fn find_boundary(&self, pos: usize) -> Option<(usize, bool)> {
        let rest = self.data.get(pos..)?;
        let rest = rest.strip_prefix(b"--")?;
        let mut best: Option<usize> = None;
        for (i, b) in self.boundaries.iter().enumerate().rev() {
            if rest.starts_with(&b.text)
                && best.is_none_or(|j| self.boundaries[j].text.len() < b.text.len())
            {
                best = Some(i);
            }
        }
        let i = best?;
        let len = self.boundaries[i].text.len();
        let closes = rest.get(len..len + 2) == Some(b"--");
        Some((i, closes))
    }

    fn header(&mut self, node: usize, start: usize) -> Next {
        let data = self.data;
        let mut pos = start;
        let mut last_boundary: Option<Vec<u8>> = None;
        let mut seen_content_type = false;
        let mut multipart_started = false;
        let mut prev_newline = 0usize;
        let body_start;
        loop {
            let at_empty_line = data.get(pos) == Some(&b'\n')
                || (data.get(pos) == Some(&b'\r') && data.get(pos + 1) == Some(&b'\n'));
            if at_empty_line
                && self.nodes[node].is_mime
                && let Some(text) = last_boundary.take()
            {
                if self.too_deep(node) {
                    self.nodes[node].overflow = true;
                    self.nodes[node].flags &= !FLAG_MULTIPART;
                } else {
                    self.boundaries.push(Boundary { text, part: node });
                    multipart_started = true;
                }
            }
            if let Some((b, _)) = self.find_boundary(pos)
                && self.boundaries[b].part != node
            {
                // An outer boundary cuts the header; the line break before it
                // belongs to the boundary.
                let end = pos - prev_newline;
                if let Some(last) = self.nodes[node].fields.last_mut() {
                    last.raw.end = last.raw.end.min(end);
                    last.value.end = last.value.end.min(end);
                }
                body_start = end;
                self.nodes[node].cut = true;
                break;
            }
            match header::next_field(data, pos) {
                Line::Field(field) => {
                    pos = field.raw.end;
                    prev_newline = if data[..pos].ends_with(b"\r\n") {
                        2
                    } else if data[..pos].ends_with(b"\n") {
                        1
                    } else {
                        0
                    };
                    let name = field.name(data);
                    if name.eq_ignore_ascii_case(b"MIME-Version") {
                        self.nodes[node].is_mime = true;
                    } else if name.eq_ignore_ascii_case(b"Content-Type") {
                        self.nodes[node].is_mime = true;
                        if !seen_content_type {
                            seen_content_type = true;
                            if let Some(boundary) = self.content_type(node, &field) {
                                last_boundary = Some(boundary);
                            }
                        }
                    }
                    self.nodes[node].fields.push(field);
                }
                Line::End { body } => {
                    // A boundary of an outer multipart right after the empty
                    // line takes that line's break, as it would any other.
                    body_start = match self.find_boundary(body) {
                        Some((b, _)) if self.boundaries[b].part != node => {
                            self.nodes[node].cut = true;
                            pos
                        }
                        _ => body,
                    };
                    pos = body;
                    break;
                }
                Line::Eof => {
                    body_start = data.len();
                    pos = data.len();
                    break;
                }
            }
        }
        let n = &mut self.nodes[node];
        n.body_start = body_start;
        if !n.is_mime {
            n.flags = 0;
        }
        if !seen_content_type || !n.is_mime {
            let digest_parent = n
                .parent
                .is_some_and(|p| self.nodes[p].flags & FLAG_DIGEST != 0);
            let n = &mut self.nodes[node];
            n.flags |= if digest_parent {
                FLAG_RFC822
            } else {
                FLAG_TEXT
            };
        }
        if multipart_started {
            return Next::ToBoundary(node, pos);
        }
        if self.nodes[node].flags & FLAG_RFC822 != 0 {
            if self.too_deep(node) {
                self.nodes[node].flags &= !FLAG_RFC822;
                self.nodes[node].overflow = true;
            } else {
                let child = self.new_node(Some(node), pos, false);
                return Next::Header(child, pos);
            }
        }
        if self.boundaries.is_empty() {
            Next::ToEof(node)
        } else {
            Next::ToBoundary(node, pos)
        }
    }

    /// Reads the media type flags of `field` into `node`; returns the
    /// boundary parameter of a multipart.
    fn content_type(&mut self, node: usize, field: &HeaderField) -> Option<Vec<u8>> {
        let value = field.value(self.data);
        let mut lexer = Lexer::new(&value);
        let mut media = Vec::new();
        let step = parse_media_type(&mut lexer, &mut media);
        let flags = &mut self.nodes[node].flags;
        if media.eq_ignore_ascii_case(b"message/rfc822") {
            *flags |= FLAG_RFC822;
        } else if media.len() >= 4
            && media[..4].eq_ignore_ascii_case(b"text")
            && (media.len() == 4 || media[4] == b'/')
        {
            *flags |= FLAG_TEXT;
        } else if media.len() >= 10 && media[..10].eq_ignore_ascii_case(b"multipart/") {
            *flags |= FLAG_MULTIPART;
            if media[10..].eq_ignore_ascii_case(b"digest") {
                *flags |= FLAG_DIGEST;
            }
        }
        if step == Step::Broken || *flags & FLAG_MULTIPART == 0 {
            return None;
        }
        lexer
            .parse_parameters()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
            .map(|(_, v)| v)
    }

    fn scan_to_boundary(&mut self, node: usize, start: usize) -> Next {
        let data = self.data;
        let mut line = start;
        loop {
            if let Some((b, closes)) = self.find_boundary(line) {
                let owner = self.boundaries[b].part;
                if line == start && self.nodes[node].cut {
                    // The cut header gave its last line break to the
                    // boundary; the enclosing parts still hold it.
                    let body_start = self.nodes[node].body_start;
                    self.nodes[node].body_end = Some(body_start);
                    if let Some(parent) = self.nodes[node].parent {
                        self.close_up_to(parent, Some(owner), line);
                    }
                } else {
                    let end = if line == start {
                        line
                    } else if line >= 2 && data[line - 2] == b'\r' {
                        line - 2
                    } else {
                        line - 1
                    };
                    self.close_up_to(node, Some(owner), end);
                }
                if closes {
                    self.boundaries.truncate(b);
                } else {
                    self.boundaries.truncate(b + 1);
                }
                let after = match data[line..].iter().position(|&c| c == b'\n') {
                    Some(i) => line + i + 1,
                    None => data.len(),
                };
                if self.boundaries.last().is_some_and(|top| top.part == owner) {
                    let child = self.new_node(Some(owner), after, true);
                    return Next::Header(child, after);
                }
                if after >= data.len() {
                    self.close_up_to(owner, None, data.len());
                    return Next::Done;
                }
                return if self.boundaries.is_empty() {
                    Next::ToEof(owner)
                } else {
                    Next::ToBoundary(owner, after)
                };
            }
            match data[line..].iter().position(|&c| c == b'\n') {
                Some(i) => line += i + 1,
                None => {
                    self.close_up_to(node, None, data.len());
                    return Next::Done;
                }
            }
            if line >= data.len() {
                self.close_up_to(node, None, data.len());
                return Next::Done;
            }
        }
    }

    /// Ends `node` and its ancestors below `owner` (all of them for `None`)
    /// at `end`.
    fn close_up_to(&mut self, node: usize, owner: Option<usize>, end: usize) {
        let mut current = Some(node);
        while let Some(n) = current {
            if Some(n) == owner {
                break;
            }
            if self.nodes[n].body_end.is_none() {
                self.nodes[n].body_end = Some(end.max(self.nodes[n].body_start));
            }
            current = self.nodes[n].parent;
        }
    }

    fn build(&mut self, root: usize) -> Part {
        // Iterative post-order, so that deep trees do not recurse here.
        let mut built: Vec<Option<Part>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if !expanded {
                stack.push((id, true));
                for &child in self.nodes[id].children.iter().rev() {
                    stack.push((child, false));
                }
                continue;
            }
            let node = &mut self.nodes[id];
            let end = node.body_end.unwrap_or(self.data.len());
            let children: Vec<Part> = node
                .children
                .iter()
                .filter_map(|&c| built[c].take())
                .collect();
            let kind = if node.flags & FLAG_MULTIPART != 0 {
                PartKind::Multipart(children)
            } else if node.flags & FLAG_RFC822 != 0 {
                match children.into_iter().next() {
                    Some(child) => PartKind::Message(Box::new(child)),
                    None => PartKind::Leaf,
                }
            } else {
                PartKind::Leaf
            };
            built[id] = Some(Part {
                header: node.header_start..node.body_start,
                body: node.body_start..end,
                fields: std::mem::take(&mut node.fields),
                kind,
                is_mime: node.is_mime,
                overflow: node.overflow,
                text: node.flags & FLAG_TEXT != 0,
                multipart: node.flags & FLAG_MULTIPART != 0,
            });
        }
        built[root].take().unwrap_or_else(|| Part {
            header: 0..0,
            body: 0..self.data.len(),
            fields: Vec::new(),
            kind: PartKind::Leaf,
            is_mime: false,
            overflow: false,
            text: true,
            multipart: false,
        })
    }
}

/// `type "/" subtype` into `out`; a type without subtype or an empty type
/// is broken (what was read stays in `out`).
pub(crate) fn parse_media_type(lexer: &mut Lexer<'_>, out: &mut Vec<u8>) -> Step {
    if lexer.skip_lwsp() != Step::More {
        return Step::Broken;
    }
    let step = lexer.parse_mime_token(out);
    if step != Step::More || out.is_empty() || lexer.peek() != b'/' {
        return Step::Broken;
    }
    lexer.bump();
    if lexer.skip_lwsp() != Step::More {
        return Step::Broken;
    }
    out.push(b'/');
    lexer.parse_mime_token(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(raw: &[u8]) -> Part {
        scan(raw, Limits::default())
    }

    #[test]
    fn multipart_children_and_boundary_newlines() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>\r\n--b--\r\n";
        let root = tree(raw);
        let children = root.children();
        assert_eq!(children.len(), 2);
        assert_eq!(&raw[children[0].body.clone()], b"one");
        assert_eq!(&raw[children[1].body.clone()], b"<p>");
        assert_eq!(root.body.end, raw.len());
    }

    #[test]
    fn outer_boundary_closes_inner_parts() {
        let raw = b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\ntext\n--o\n\nafter\n--o--\n";
        let root = tree(raw);
        let children = root.children();
        assert_eq!(children.len(), 2);
        assert_eq!(children[0].children().len(), 1);
        assert_eq!(&raw[children[0].children()[0].body.clone()], b"text");
        assert_eq!(&raw[children[1].body.clone()], b"after");
    }

    #[test]
    fn message_rfc822_nests() {
        let raw = b"Content-Type: message/rfc822\n\nSubject: inner\n\nbody\n";
        let root = tree(raw);
        let PartKind::Message(inner) = &root.kind else {
            panic!("not a message part");
        };
        assert_eq!(&raw[inner.body.clone()], b"body\n");
    }

    #[test]
    fn depth_limit_makes_a_leaf() {
        let mut raw = Vec::new();
        for _ in 0..5 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\n\n");
        }
        raw.extend_from_slice(b"\nend\n");
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let mut part = scan(&raw, limits);
        let mut depth = 0;
        while let PartKind::Message(inner) = part.kind {
            part = *inner;
            depth += 1;
        }
        assert_eq!(depth, 2);
        assert!(part.overflow);
    }
}
