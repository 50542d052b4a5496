//! Properties: parse → encode → parse gives the same command, and encode →
//! parse gives the same response, for generated values of every kind.

use std::num::NonZeroU32;

use bytes::Bytes;
use ironpost_imap_proto::response::{
    Delimiter, MailboxAttribute, NamespaceDescription, QuotaResource, Rendered, Text,
};
use ironpost_imap_proto::types::*;
use ironpost_imap_proto::{
    Code, Command, CommandBody, Data, FetchItem, Response, Status, StatusKind,
};
use proptest::prelude::*;

fn nz() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1u32..20, 1u32..=u32::MAX].prop_map(|n| NonZeroU32::new(n).unwrap())
}

fn atom() -> impl Strategy<Value = Atom> {
    "[A-Za-z0-9$._+=-]{1,12}".prop_map(|s| Atom::new(s).unwrap())
}

fn astring() -> impl Strategy<Value = AString> {
    prop_oneof![
        "[A-Za-z0-9]{0,10}",
        "[ -~]{0,20}",
        "\\PC{0,8}",
        Just("NIL".to_string()),
        Just("a\r\nb".to_string()),
        Just("x".repeat(300)),
    ]
    .prop_map(|s| AString::new(s.into_bytes()).unwrap())
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    astring().prop_map(Mailbox::new)
}

fn seq_set() -> impl Strategy<Value = SequenceSet> {
    let n = prop_oneof![nz().prop_map(SeqNumber::Value), Just(SeqNumber::Largest)];
    let r = prop_oneof![
        n.clone().prop_map(SeqRange::Single),
        (n.clone(), n).prop_map(|(a, b)| SeqRange::Range(a, b)),
    ];
    prop::collection::vec(r, 1..4).prop_map(|v| SequenceSet::new(v).unwrap())
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::Answered),
        Just(Flag::Flagged),
        Just(Flag::Deleted),
        Just(Flag::Seen),
        Just(Flag::Draft),
        atom().prop_map(Flag::Keyword),
        "X[a-z]{1,6}".prop_map(|s| Flag::backslashed(Atom::new(s).unwrap())),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (1u16..=9999, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| Date::new(y, m, d).unwrap())
}

fn date_time() -> impl Strategy<Value = DateTime> {
    (
        date(),
        0u8..24,
        0u8..60,
        0u8..60,
        -(99 * 60 + 59)..=(99i16 * 60 + 59),
    )
        .prop_map(|(d, h, m, s, z)| DateTime::new(d, h, m, s, z).unwrap())
}

fn search_key() -> impl Strategy<Value = SearchKey> {
    let leaf = prop_oneof![
        Just(SearchKey::All),
        Just(SearchKey::Answered),
        Just(SearchKey::New),
        Just(SearchKey::Unseen),
        astring().prop_map(SearchKey::Subject),
        astring().prop_map(SearchKey::Text),
        (astring(), astring()).prop_map(|(f, v)| SearchKey::Header(f, v)),
        atom().prop_map(SearchKey::Keyword),
        any::<u32>().prop_map(SearchKey::Larger),
        date().prop_map(SearchKey::Since),
        date().prop_map(SearchKey::SentBefore),
        seq_set().prop_map(SearchKey::Uid),
        seq_set().prop_map(SearchKey::SequenceSet),
    ];
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|k| SearchKey::Not(Box::new(k))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| SearchKey::Or(Box::new(a), Box::new(b))),
            prop::collection::vec(inner, 1..3).prop_map(SearchKey::And),
        ]
    })
}

fn part() -> impl Strategy<Value = Vec<NonZeroU32>> {
    prop::collection::vec(nz(), 0..3)
}

fn section() -> impl Strategy<Value = Section> {
    let names = || prop::collection::vec(astring(), 1..3);
    let text = prop_oneof![
        Just(None),
        Just(Some(SectionText::Header)),
        Just(Some(SectionText::Text)),
        Just(Some(SectionText::Mime)),
        names().prop_map(|n| Some(SectionText::HeaderFields(n))),
        names().prop_map(|n| Some(SectionText::HeaderFieldsNot(n))),
    ];
    (part(), text).prop_filter_map("MIME needs a part", |(p, t)| Section::new(p, t).ok())
}

fn partial() -> impl Strategy<Value = Option<Partial>> {
    prop::option::of((any::<u32>(), nz()).prop_map(|(origin, length)| Partial { origin, length }))
}

fn fetch_att() -> impl Strategy<Value = FetchAttribute> {
    prop_oneof![
        Just(FetchAttribute::Envelope),
        Just(FetchAttribute::Flags),
        Just(FetchAttribute::InternalDate),
        Just(FetchAttribute::Rfc822),
        Just(FetchAttribute::Rfc822Header),
        Just(FetchAttribute::Rfc822Size),
        Just(FetchAttribute::Rfc822Text),
        Just(FetchAttribute::Body),
        Just(FetchAttribute::BodyStructure),
        Just(FetchAttribute::Uid),
        (any::<bool>(), section(), partial()).prop_map(|(peek, section, partial)| {
            FetchAttribute::BodySection {
                peek,
                section,
                partial,
            }
        }),
        (any::<bool>(), part(), partial()).prop_map(|(peek, part, partial)| {
            FetchAttribute::Binary {
                peek,
                part,
                partial,
            }
        }),
        part().prop_map(|part| FetchAttribute::BinarySize { part }),
    ]
}

fn fetch_items() -> impl Strategy<Value = FetchItems> {
    prop_oneof![
        Just(FetchItems::Macro(FetchMacro::All)),
        Just(FetchItems::Macro(FetchMacro::Fast)),
        Just(FetchItems::Macro(FetchMacro::Full)),
        fetch_att().prop_map(|a| FetchItems::Attributes {
            attributes: vec![a],
            single: true
        }),
        prop::collection::vec(fetch_att(), 1..4).prop_map(|attributes| FetchItems::Attributes {
            attributes,
            single: false
        }),
    ]
}

fn secret() -> impl Strategy<Value = Secret> {
    astring().prop_map(Secret::new)
}

fn body() -> impl Strategy<Value = CommandBody> {
    use CommandBody as C;
    let status_item = prop_oneof![
        Just(StatusItem::Messages),
        Just(StatusItem::Recent),
        Just(StatusItem::UidNext),
        Just(StatusItem::UidValidity),
        Just(StatusItem::Unseen),
    ];
    let sort_key = prop_oneof![
        Just(SortKey::Arrival),
        Just(SortKey::Cc),
        Just(SortKey::Date),
        Just(SortKey::From),
        Just(SortKey::Size),
        Just(SortKey::Subject),
        Just(SortKey::To),
    ];
    let store = (
        prop_oneof![
            Just(StoreMode::Replace),
            Just(StoreMode::Add),
            Just(StoreMode::Remove)
        ],
        any::<bool>(),
        prop::collection::vec(flag(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(mode, silent, flags, list)| StoreAction {
            mode,
            silent,
            list: list || flags.is_empty(),
            flags,
        });
    let id = prop::option::of(prop::collection::vec(
        (astring(), prop::option::of(astring())),
        0..3,
    ));
    prop_oneof![
        Just(C::Capability),
        Just(C::Noop),
        Just(C::Logout),
        Just(C::StartTls),
        Just(C::Namespace),
        Just(C::Idle),
        Just(C::Check),
        Just(C::Close),
        Just(C::Unselect),
        Just(C::Expunge),
        id.prop_map(C::Id),
        (atom(), prop::option::of("[A-Za-z0-9+/]{4,12}={0,2}")).prop_map(|(mechanism, ir)| {
            C::Authenticate {
                mechanism,
                initial: ir.map(|s| Secret::new(AString::new(s.into_bytes()).unwrap())),
            }
        }),
        (astring(), secret()).prop_map(|(username, password)| C::Login { username, password }),
        prop::collection::vec(atom(), 1..3).prop_map(C::Enable),
        mailbox().prop_map(|mailbox| C::Select { mailbox }),
        mailbox().prop_map(|mailbox| C::Examine { mailbox }),
        mailbox().prop_map(|mailbox| C::Create { mailbox }),
        mailbox().prop_map(|mailbox| C::Delete { mailbox }),
        (mailbox(), mailbox()).prop_map(|(from, to)| C::Rename { from, to }),
        mailbox().prop_map(|mailbox| C::Subscribe { mailbox }),
        mailbox().prop_map(|mailbox| C::Unsubscribe { mailbox }),
        (
            mailbox(),
            prop_oneof![
                astring(),
                "[%*a-z/]{1,6}".prop_map(|s| AString::new(s).unwrap())
            ]
        )
            .prop_map(|(reference, p)| C::List {
                reference,
                pattern: ListPattern::new(p)
            }),
        (mailbox(), astring()).prop_map(|(reference, p)| C::Lsub {
            reference,
            pattern: ListPattern::new(p)
        }),
        (mailbox(), prop::collection::vec(status_item, 1..4))
            .prop_map(|(mailbox, items)| C::Status { mailbox, items }),
        (
            mailbox(),
            prop::collection::vec(flag(), 0..3),
            prop::option::of(date_time()),
            prop::collection::vec(1u8..=255, 0..40)
        )
            .prop_map(|(mailbox, flags, date, message)| C::Append {
                mailbox,
                flags,
                date,
                message
            }),
        astring().prop_map(|root| C::GetQuota { root }),
        mailbox().prop_map(|mailbox| C::GetQuotaRoot { mailbox }),
        (
            astring(),
            prop::collection::vec((atom(), 0u64..=i64::MAX as u64), 0..3)
        )
            .prop_map(|(root, limits)| C::SetQuota { root, limits }),
        seq_set().prop_map(C::UidExpunge),
        (
            prop::option::of(atom()),
            prop::collection::vec(search_key(), 1..3),
            any::<bool>()
        )
            .prop_map(|(charset, criteria, uid)| C::Search {
                charset,
                criteria,
                uid
            }),
        (
            prop::collection::vec((any::<bool>(), sort_key), 1..3),
            atom(),
            prop::collection::vec(search_key(), 1..3),
            any::<bool>()
        )
            .prop_map(|(c, charset, search, uid)| C::Sort {
                criteria: c
                    .into_iter()
                    .map(|(reverse, key)| SortCriterion { reverse, key })
                    .collect(),
                charset,
                search,
                uid,
            }),
        (seq_set(), fetch_items(), any::<bool>()).prop_map(|(set, items, uid)| C::Fetch {
            set,
            items,
            uid
        }),
        (seq_set(), store, any::<bool>()).prop_map(|(set, action, uid)| C::Store {
            set,
            action,
            uid
        }),
        (seq_set(), mailbox(), any::<bool>()).prop_map(|(set, mailbox, uid)| C::Copy {
            set,
            mailbox,
            uid
        }),
        (seq_set(), mailbox(), any::<bool>()).prop_map(|(set, mailbox, uid)| C::Move {
            set,
            mailbox,
            uid
        }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    ("[A-Za-z0-9.]{1,6}", body()).prop_map(|(tag, body)| Command {
        tag: Tag::new(tag).unwrap(),
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn command_parse_encode_parse(command in command()) {
        let mut wire = Vec::new();
        command.encode(&mut wire);
        let parsed = Command::parse(&wire);
        prop_assert_eq!(parsed.as_ref(), Ok(&command), "{}", String::from_utf8_lossy(&wire));
        // And once more from the parsed value: the encoding is stable.
        let mut again = Vec::new();
        parsed.unwrap().encode(&mut again);
        prop_assert_eq!(again, wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Command::parse(&bytes);
        let _ = Response::parse(&bytes);
    }
}

fn text() -> impl Strategy<Value = Text> {
    "[A-Za-z][ -~]{0,20}".prop_map(|s| Text::new(s).unwrap())
}

fn code() -> impl Strategy<Value = Code> {
    prop_oneof![
        Just(Code::Alert),
        Just(Code::ReadOnly),
        Just(Code::TryCreate),
        Just(Code::OverQuota),
        Just(Code::TooBig),
        Just(Code::PrivacyRequired),
        prop::collection::vec(atom(), 0..3).prop_map(Code::BadCharset),
        prop::collection::vec(atom(), 1..3).prop_map(Code::Capability),
        prop::collection::vec(
            prop_oneof![
                flag().prop_map(PermanentFlag::Flag),
                Just(PermanentFlag::AnyKeyword)
            ],
            0..3
        )
        .prop_map(Code::PermanentFlags),
        nz().prop_map(Code::UidNext),
        nz().prop_map(Code::UidValidity),
        nz().prop_map(Code::Unseen),
        (nz(), seq_set()).prop_map(|(uid_validity, uids)| Code::AppendUid { uid_validity, uids }),
        (nz(), seq_set(), seq_set()).prop_map(|(uid_validity, source, destination)| {
            Code::CopyUid {
                uid_validity,
                source,
                destination,
            }
        }),
        ("X-[A-Z]{1,6}", prop::option::of("[a-z][a-z ]{0,8}[a-z]"))
            .prop_map(|(a, t)| Code::Other(Atom::new(a).unwrap(), t)),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    (
        prop_oneof![
            Just(StatusKind::Ok),
            Just(StatusKind::No),
            Just(StatusKind::Bad)
        ],
        prop::option::of(code()),
        text(),
    )
        .prop_map(|(kind, code, text)| Status { kind, code, text })
}

fn bytes() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(1u8..=255, 0..40).prop_map(Bytes::from))
}

fn fetch_item() -> impl Strategy<Value = FetchItem> {
    let rendered = prop_oneof![
        Just(&b"(NIL NIL)"[..]),
        Just(&b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"8BIT\" 12 1)"[..]),
        Just(&b"({4}\r\n(()) \"a\\\"b\")"[..]),
    ]
    .prop_map(|b| Rendered::new(b.to_vec()).unwrap());
    prop_oneof![
        prop::collection::vec(prop_oneof![flag(), Just(Flag::Recent)], 0..3)
            .prop_map(FetchItem::Flags),
        date_time().prop_map(FetchItem::InternalDate),
        any::<u32>().prop_map(FetchItem::Rfc822Size),
        nz().prop_map(FetchItem::Uid),
        rendered.clone().prop_map(FetchItem::Envelope),
        rendered.clone().prop_map(FetchItem::BodyStructure),
        rendered.prop_map(FetchItem::Body),
        (section(), prop::option::of(any::<u32>()), bytes()).prop_map(|(section, origin, data)| {
            FetchItem::BodySection {
                section,
                origin,
                data,
            }
        }),
        (
            part(),
            prop::option::of(any::<u32>()),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from))
        )
            .prop_map(|(part, origin, data)| FetchItem::Binary { part, origin, data }),
        (part(), any::<u32>()).prop_map(|(part, size)| FetchItem::BinarySize { part, size }),
        bytes().prop_map(FetchItem::Rfc822),
        bytes().prop_map(FetchItem::Rfc822Header),
        bytes().prop_map(FetchItem::Rfc822Text),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    let attr = prop_oneof![
        Just(MailboxAttribute::NoSelect),
        Just(MailboxAttribute::HasChildren),
        Just(MailboxAttribute::Sent),
        "X[a-z]{1,5}".prop_map(|s| MailboxAttribute::from_name(Atom::new(s).unwrap())),
    ];
    let delim = prop::option::of(prop_oneof![Just(b'/'), Just(b'.'), Just(b'"'), Just(b'\\')])
        .prop_map(|d| d.map(|d| Delimiter::new(d).unwrap()));
    let ns = || {
        let delim = prop::option::of(prop_oneof![Just(b'/'), Just(b'.')])
            .prop_map(|d| d.map(|d| Delimiter::new(d).unwrap()));
        prop::option::of(prop::collection::vec(
            (astring(), delim)
                .prop_map(|(prefix, delimiter)| NamespaceDescription { prefix, delimiter }),
            1..3,
        ))
    };
    let status_item = prop_oneof![
        Just(StatusItem::Messages),
        Just(StatusItem::UidNext),
        Just(StatusItem::Unseen)
    ];
    prop_oneof![
        prop::collection::vec(atom(), 1..4).prop_map(Data::Capability),
        (
            prop::collection::vec(attr.clone(), 0..3),
            delim.clone(),
            mailbox()
        )
            .prop_map(|(attributes, delimiter, mailbox)| Data::List {
                attributes,
                delimiter,
                mailbox
            }),
        (prop::collection::vec(attr, 0..3), delim, mailbox()).prop_map(
            |(attributes, delimiter, mailbox)| Data::Lsub {
                attributes,
                delimiter,
                mailbox
            }
        ),
        (
            mailbox(),
            prop::collection::vec((status_item, 0u64..=i64::MAX as u64), 0..3)
        )
            .prop_map(|(mailbox, items)| Data::Status { mailbox, items }),
        prop::collection::vec(nz(), 0..5).prop_map(Data::Search),
        prop::collection::vec(nz(), 0..5).prop_map(Data::Sort),
        prop::collection::vec(flag(), 0..4).prop_map(Data::Flags),
        any::<u32>().prop_map(Data::Exists),
        any::<u32>().prop_map(Data::Recent),
        nz().prop_map(Data::Expunge),
        (nz(), prop::collection::vec(fetch_item(), 1..4))
            .prop_map(|(seq, items)| Data::Fetch { seq, items }),
        (ns(), ns(), ns()).prop_map(|(personal, other, shared)| Data::Namespace {
            personal,
            other,
            shared
        }),
        (
            astring(),
            prop::collection::vec((atom(), any::<u32>(), any::<u32>()), 0..3)
        )
            .prop_map(|(root, r)| {
                Data::Quota {
                    root,
                    resources: r
                        .into_iter()
                        .map(|(name, usage, limit)| QuotaResource {
                            name,
                            usage: usage.into(),
                            limit: limit.into(),
                        })
                        .collect(),
                }
            }),
        (mailbox(), prop::collection::vec(astring(), 0..3))
            .prop_map(|(mailbox, roots)| Data::QuotaRoot { mailbox, roots }),
        prop::option::of(prop::collection::vec(
            (astring(), prop::option::of(astring())),
            0..3
        ))
        .prop_map(Data::Id),
        prop::collection::vec(atom(), 0..3).prop_map(Data::Enabled),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        ("[A-Za-z0-9]{1,5}", status()).prop_map(|(t, s)| Response::Tagged(Tag::new(t).unwrap(), s)),
        status().prop_map(Response::Untagged),
        data().prop_map(Response::Data),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn response_encode_parse(response in response()) {
        let mut wire = Vec::new();
        response.encode(&mut wire);
        let parsed = Response::parse(&wire);
        prop_assert_eq!(parsed.as_ref(), Some(&response), "{}", String::from_utf8_lossy(&wire));
    }
}
