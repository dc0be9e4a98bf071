//! Signing and opening checkpoints: round trips, notes from the Go and Python
//! implementations, and every way a note, a body or a key can be refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::note::{verified_note_text, KEY_ID_BYTES};
use super::*;

/// The example of `golang.org/x/mod/sumdb/note`: its verifier key, the
/// seed of its signer key (`PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK…`
/// without the type byte), and the signed note its documentation shows.
const GO_VERIFIER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_SIGNER_SEED_HEX: &str = "810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n\
                       \n\
                       — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

/// A checkpoint signed independently with Python's `cryptography`
/// package (seeds `SHA-256("uptime-ledger interop log key")` and
/// `SHA-256("uptime-ledger interop witness key")`), first by a witness
/// this test does not know, then by the log.
const PYTHON_VERIFIER_KEY: &str =
    "example.com/uptime-ledger+213d874c+AVXcrO25P9I1lQt+2myzJm76IqAAR/DQec08lvaZB/FG";
const PYTHON_ROOT_HEX: &str = "4dd08e1cbbefb2b816c9e74d63ca83925626f3597ac887de923a9f5812184a74";
const PYTHON_NOTE: &str = "example.com/uptime-ledger\n\
    1234567\n\
    TdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=\n\
    \n\
    — witness.example/w1 DXTvVct9bneph/is5yMkJ5OLP/zUBLUBsTU2955T2AjaZk5oVH/0rcRMDldjGC/pcMW3KD2h3+HzvhNWHr4hwEiZkwY=\n\
    — example.com/uptime-ledger IT2HTH8o9q606x2rzWpZyFBbH5ygQ3LHrGndBTtZ0VHYEpkXzXa+eFoAxYyTmMXLw2MFemee9E72DzFzxN5ZyNO9+wI=\n";

const ORIGIN: &str = "example.com/uptime-ledger";

fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn checkpoint(tree_size: u64) -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size,
        root_hash: Sha256::digest(tree_size.to_be_bytes()).into(),
        extensions: Vec::new(),
    }
}

/// A note of `checkpoint(42)` signed by the log key, and that key's verifier.
fn signed_note() -> (String, NoteVerifier) {
    let log = signer(ORIGIN, 1);
    (
        log.sign_checkpoint(&checkpoint(42)).unwrap(),
        log.verifier(),
    )
}

#[test]
fn signed_checkpoint_opens_to_the_same_checkpoint() {
    let log = signer(ORIGIN, 1);
    for checkpoint in [
        checkpoint(0),
        checkpoint(42),
        checkpoint(u64::MAX),
        Checkpoint {
            extensions: vec!["first extension".to_owned(), "+second—extension".to_owned()],
            ..checkpoint(7)
        },
    ] {
        let note = log.sign_checkpoint(&checkpoint).unwrap();
        assert!(note.starts_with(&format!("{}\n", checkpoint.body())));
        assert_eq!(open_checkpoint(&note, &log.verifier()), Ok(checkpoint));
    }
}

#[test]
fn body_has_the_spec_layout() {
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size: 1234567,
        root_hash: hex::decode(PYTHON_ROOT_HEX).unwrap().try_into().unwrap(),
        extensions: vec!["extension".to_owned()],
    };
    let body = "example.com/uptime-ledger\n1234567\nTdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=\nextension\n";
    assert_eq!(checkpoint.body(), body);
    assert_eq!(Checkpoint::parse_body(body), Ok(checkpoint));
}

#[test]
fn verifier_key_string_round_trips() {
    for key in [GO_VERIFIER_KEY, PYTHON_VERIFIER_KEY] {
        assert_eq!(key.parse::<NoteVerifier>().unwrap().to_string(), key);
    }
    let verifier = signer(ORIGIN, 1).verifier();
    assert_eq!(verifier.to_string().parse::<NoteVerifier>(), Ok(verifier));
}

#[test]
fn key_id_matches_the_go_example_and_the_spec_formula() {
    let verifier: NoteVerifier = GO_VERIFIER_KEY.parse().unwrap();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.key_id(), 0xc74f20a3);

    let mut preimage = b"PeterNeumann\n\x01".to_vec();
    preimage.extend_from_slice(verifier.public_key().as_bytes());
    assert_eq!(Sha256::digest(&preimage)[..4], 0xc74f20a3u32.to_be_bytes());

    let seed: [u8; 32] = hex::decode(GO_SIGNER_SEED_HEX).unwrap().try_into().unwrap();
    let go_signer = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
    assert_eq!(go_signer.verifier(), verifier);
}

#[test]
fn notes_match_the_go_implementation_byte_for_byte() {
    let seed: [u8; 32] = hex::decode(GO_SIGNER_SEED_HEX).unwrap().try_into().unwrap();
    let go_signer = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
    assert_eq!(go_signer.sign_note_text(GO_TEXT), GO_NOTE);

    let verifier: NoteVerifier = GO_VERIFIER_KEY.parse().unwrap();
    assert_eq!(verified_note_text(GO_NOTE, &verifier), Ok(GO_TEXT));
    // The Go example verifies but is prose, not a checkpoint.
    assert!(matches!(
        open_checkpoint(GO_NOTE, &verifier),
        Err(CheckpointError::MalformedCheckpoint { .. })
    ));
}

#[test]
fn opens_a_checkpoint_signed_by_python() {
    let verifier: NoteVerifier = PYTHON_VERIFIER_KEY.parse().unwrap();
    let expected = Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size: 1234567,
        root_hash: hex::decode(PYTHON_ROOT_HEX).unwrap().try_into().unwrap(),
        extensions: Vec::new(),
    };
    assert_eq!(open_checkpoint(PYTHON_NOTE, &verifier), Ok(expected));
}

#[test]
fn signatures_by_unknown_keys_are_ignored() {
    let (note, verifier) = signed_note();
    let text = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let witness_line =
        signer("witness.example", 2).sign_note_text(&text)[text.len() + 1..].to_owned();
    // The same name as the log with a different key, hence key ID.
    let rotated_line = signer(ORIGIN, 3).sign_note_text(&text)[text.len() + 1..].to_owned();
    for note in [
        format!("{note}{witness_line}"),
        format!("{text}\n{witness_line}{}", &note[text.len() + 1..]),
        format!("{note}{rotated_line}"),
    ] {
        assert_eq!(
            open_checkpoint(&note, &verifier),
            Ok(checkpoint(42)),
            "{note}"
        );
    }
}

#[test]
fn a_note_without_a_signature_by_the_pinned_key_is_rejected() {
    let checkpoint = checkpoint(42);
    let pinned = signer(ORIGIN, 1).verifier();
    let no_signature_from_key = |signed_by: String| {
        Err(CheckpointError::NoSignatureFromKey {
            key: format!("{ORIGIN}+{:08x}", pinned.key_id()),
            signed_by,
        })
    };
    // Same name, different key: its key ID differs, so it is another key; the error
    // names the key that did sign.
    let other = signer(ORIGIN, 3);
    let other_key = other.sign_checkpoint(&checkpoint).unwrap();
    assert_eq!(
        open_checkpoint(&other_key, &pinned),
        no_signature_from_key(format!("{ORIGIN}+{:08x}", other.verifier().key_id()))
    );
    // The pinned key ID under another name.
    let renamed = signed_note()
        .0
        .replacen(&format!("— {ORIGIN} "), "— witness.example ", 1);
    assert_eq!(
        open_checkpoint(&renamed, &pinned),
        no_signature_from_key(format!("witness.example+{:08x}", pinned.key_id()))
    );
}

#[test]
fn a_wrong_signature_by_the_pinned_key_is_rejected() {
    let (note, verifier) = signed_note();
    let invalid = Err(CheckpointError::SignatureInvalid {
        key: format!("{ORIGIN}+{:08x}", verifier.key_id()),
    });
    let (text, signature_line) = note.split_once("\n\n").unwrap();
    let tampered = [
        note.replacen("\n42\n", "\n43\n", 1),
        note.replacen(
            &BASE64.encode(checkpoint(42).root_hash),
            &BASE64.encode([0u8; 32]),
            1,
        ),
        note.replacen(ORIGIN, "example.com/uptime-ledgeR", 1),
        format!("{text}\nextension\n\n{signature_line}"),
    ];
    for note in tampered {
        assert_eq!(open_checkpoint(&note, &verifier), invalid, "{note}");
    }
    // A bad signature is fatal even next to a good one.
    let flipped = signature_line.replacen("— example.com/uptime-ledger ", "", 1);
    let mut payload = BASE64.decode(flipped.trim_end()).unwrap();
    payload[10] ^= 1;
    let bad_line = format!("— {ORIGIN} {}\n", BASE64.encode(&payload));
    assert_eq!(
        open_checkpoint(&format!("{note}{bad_line}"), &verifier),
        invalid
    );
    // A signature of the wrong length under the pinned key ID.
    payload.truncate(KEY_ID_BYTES + 63);
    let short_line = format!("— {ORIGIN} {}\n", BASE64.encode(&payload));
    assert_eq!(
        open_checkpoint(&format!("{note}{short_line}"), &verifier),
        invalid
    );
}

#[test]
fn a_checkpoint_of_another_origin_is_rejected() {
    let log = signer(ORIGIN, 1);
    let foreign = Checkpoint {
        origin: "example.com/other-log".to_owned(),
        ..checkpoint(42)
    };
    let origin_mismatch = CheckpointError::OriginMismatch {
        origin: "example.com/other-log".to_owned(),
        key_name: ORIGIN.to_owned(),
    };
    assert_eq!(log.sign_checkpoint(&foreign), Err(origin_mismatch.clone()));
    // A note that only a misbehaving signer could produce.
    let note = log.sign_note_text(&foreign.body());
    assert_eq!(
        open_checkpoint(&note, &log.verifier()),
        Err(origin_mismatch)
    );
}

#[test]
fn malformed_notes_are_rejected() {
    let (note, verifier) = signed_note();
    let (text, signature_line) = note.split_once("\n\n").unwrap();
    let bad_line = |line, reason| CheckpointError::MalformedSignatureLine { line, reason };
    let no_dash = "it does not start with an em dash (U+2014) and a space";
    let no_space = "it has no space between the key name and the signature";
    let bad_base64 = "its signature is not padded standard base64";
    let cases = [
        (
            format!("{text}\n{signature_line}"),
            CheckpointError::MissingSignatureSeparator,
        ),
        (String::new(), CheckpointError::MissingSignatureSeparator),
        (note.replacen('—', "-", 1), bad_line(5, no_dash)),
        (note.replacen('—', "\u{2013}", 1), bad_line(5, no_dash)),
        (note.replacen("— ", "—", 1), bad_line(5, no_dash)),
        (
            format!("{note}garbage"),
            CheckpointError::MissingFinalNewline,
        ),
        (format!("{note}garbage\n"), bad_line(6, no_dash)),
        (format!("{note}\n"), CheckpointError::NoSignatureLines),
        (format!("{text}\n\n"), CheckpointError::NoSignatureLines),
        (
            format!("{text}\n\n{}", signature_line.replacen('=', "", 1)),
            bad_line(5, bad_base64),
        ),
        (format!("{note}— {ORIGIN} !!!!\n"), bad_line(6, bad_base64)),
        (
            format!("{note}— {ORIGIN} AAAAAA==\n"),
            bad_line(
                6,
                "its signature is too short to hold a 4-byte key ID and a signature",
            ),
        ),
        (
            format!("{note}— a+b AAAAAAAA\n"),
            bad_line(
                6,
                "its key name is empty or contains a space, '+' or control character",
            ),
        ),
        (format!("{note}— {ORIGIN}\n"), bad_line(6, no_space)),
        (
            note.replacen("42", "4\t2", 1),
            CheckpointError::ControlCharacter {
                character: '\t',
                offset: 27,
            },
        ),
        (
            note.replace('\n', "\r\n"),
            CheckpointError::ControlCharacter {
                character: '\r',
                offset: ORIGIN.len(),
            },
        ),
    ];
    for (note, expected) in cases {
        assert_eq!(open_checkpoint(&note, &verifier), Err(expected), "{note:?}");
    }
}

#[test]
fn huge_notes_are_rejected_before_parsing() {
    let (note, verifier) = signed_note();
    let huge = format!("{}{note}", "a".repeat(MAX_NOTE_BYTES));
    assert_eq!(
        open_checkpoint(&huge, &verifier),
        Err(CheckpointError::NoteTooLarge {
            size: huge.len(),
            limit: MAX_NOTE_BYTES
        })
    );
    let log = signer(ORIGIN, 1);
    let oversized = Checkpoint {
        extensions: vec!["x".repeat(MAX_NOTE_BYTES)],
        ..checkpoint(42)
    };
    assert!(matches!(
        log.sign_checkpoint(&oversized),
        Err(CheckpointError::NoteTooLarge { .. })
    ));
}

#[test]
fn at_most_one_hundred_signatures_are_read() {
    let (note, verifier) = signed_note();
    let witness_line = format!("— witness.example {}\n", BASE64.encode([7u8; 68]));
    let with_unknown = |count: usize| format!("{note}{}", witness_line.repeat(count));
    assert_eq!(
        open_checkpoint(&with_unknown(MAX_SIGNATURES - 1), &verifier),
        Ok(checkpoint(42))
    );
    assert_eq!(
        open_checkpoint(&with_unknown(MAX_SIGNATURES), &verifier),
        Err(CheckpointError::TooManySignatures {
            limit: MAX_SIGNATURES
        })
    );
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = BASE64.encode([9u8; 32]);
    let valid = [
        (format!("o\n0\n{root}\n"), 0),
        (format!("o\n10\n{root}\n"), 10),
        (format!("o\n18446744073709551615\n{root}\n"), u64::MAX),
        (format!("o with spaces+plus\n1\n{root}\next\n"), 1),
    ];
    for (body, tree_size) in valid {
        assert_eq!(
            Checkpoint::parse_body(&body).unwrap().tree_size,
            tree_size,
            "{body:?}"
        );
    }
    let invalid = [
        String::new(),
        format!("o\n1\n{root}"),
        format!("\n1\n{root}\n"),
        "o\n1\n".to_owned(),
        "o\n".to_owned(),
        format!("o\n01\n{root}\n"),
        format!("o\n00\n{root}\n"),
        format!("o\n+1\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n 1\n{root}\n"),
        format!("o\n\n{root}\n"),
        format!("o\n1e3\n{root}\n"),
        format!("o\n18446744073709551616\n{root}\n"),
        "o\n1\n\n".to_owned(),
        format!("o\n1\n{}\n", root.trim_end_matches('=')),
        format!("o\n1\n{}\n", BASE64.encode([9u8; 31])),
        format!("o\n1\n{}\n", BASE64.encode([9u8; 33])),
        format!("o\n1\n{root}\n\n"),
        format!("o\n1\n{root}\next\n\next\n"),
        format!("o\x01\n1\n{root}\n"),
    ];
    for body in invalid {
        let error = Checkpoint::parse_body(&body).unwrap_err();
        assert!(
            matches!(
                error,
                CheckpointError::MalformedCheckpoint { .. }
                    | CheckpointError::ControlCharacter { .. }
            ),
            "{body:?} gave {error:?}"
        );
    }
}

#[test]
fn invalid_verifier_keys_are_rejected() {
    let (name, rest) = PYTHON_VERIFIER_KEY.split_once('+').unwrap();
    let (_, key_base64) = rest.split_once('+').unwrap();
    let typed_key = BASE64.decode(key_base64).unwrap();
    let with_key = |bytes: &[u8]| format!("{name}+213d874c+{}", BASE64.encode(bytes));
    let invalid = [
        String::new(),
        name.to_owned(),
        format!("{name}+213d874c"),
        PYTHON_VERIFIER_KEY.replacen("213d874c", "213D874C", 1),
        PYTHON_VERIFIER_KEY.replacen("213d874c", "213d874", 1),
        PYTHON_VERIFIER_KEY.replacen("213d874c", "+213d874", 1),
        PYTHON_VERIFIER_KEY.replacen("213d874c", "0213d874c", 1),
        format!("{PYTHON_VERIFIER_KEY}="),
        format!("{name}+213d874c+"),
        with_key(&[&[0x04], &typed_key[1..]].concat()),
        with_key(&typed_key[..32]),
        with_key(&[typed_key.as_slice(), &[0]].concat()),
        with_key(&[0x01; 1]),
        // The identity point has small order.
        with_key(&[&[0x01, 0x01], [0u8; 31].as_slice()].concat()),
    ];
    for key in invalid {
        let error = key.parse::<NoteVerifier>().unwrap_err();
        assert!(
            matches!(
                error,
                CheckpointError::InvalidVerifierKey { .. }
                    | CheckpointError::WeakVerifierKey(_)
                    | CheckpointError::InvalidKeyName { .. }
            ),
            "{key:?} gave {error:?}"
        );
    }
    for bad_name in ["", "a b", "a\u{a0}b", "a\tb"] {
        let key = PYTHON_VERIFIER_KEY.replacen(name, bad_name, 1);
        assert_eq!(
            key.parse::<NoteVerifier>(),
            Err(CheckpointError::InvalidKeyName {
                name: bad_name.to_owned()
            })
        );
    }
    let renamed = PYTHON_VERIFIER_KEY.replacen(name, "example.com/other", 1);
    assert!(matches!(
        renamed.parse::<NoteVerifier>(),
        Err(CheckpointError::KeyIdMismatch {
            claimed: 0x213d874c,
            ..
        })
    ));
    let error = renamed.parse::<NoteVerifier>().unwrap_err().to_string();
    assert!(
        error.starts_with("verifier key example.com/other+213d874c has the wrong key ID"),
        "{error}"
    );
}

#[test]
fn signers_reject_invalid_names_and_extensions() {
    for name in ["", "has space", "has+plus", "new\nline"] {
        assert!(matches!(
            NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])),
            Err(CheckpointError::InvalidKeyName { .. })
        ));
    }
    let log = signer(ORIGIN, 1);
    for extensions in [
        vec![String::new()],
        vec!["a".to_owned(), "b\nc".to_owned()],
        vec!["\u{7}".to_owned()],
    ] {
        let index = extensions.len() - 1;
        let checkpoint = Checkpoint {
            extensions,
            ..checkpoint(1)
        };
        assert_eq!(
            log.sign_checkpoint(&checkpoint),
            Err(CheckpointError::InvalidExtension { index })
        );
    }
}

#[test]
fn error_messages_name_the_key() {
    let (note, verifier) = signed_note();
    let error = open_checkpoint(&note.replacen("\n42\n", "\n43\n", 1), &verifier).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "checkpoint signature does not verify with key {ORIGIN}+{:08x}",
            verifier.key_id()
        )
    );
}

proptest! {
    #[test]
    fn any_checkpoint_round_trips(
        origin in "[a-z0-9.-]{1,20}(/[a-zA-Z0-9._~-]{1,20}){0,3}",
        tree_size in any::<u64>(),
        root_hash in any::<[u8; 32]>(),
        extensions in proptest::collection::vec("[^\\x00-\\x1f]{1,40}", 0..3),
    ) {
        let log = NoteSigner::new(&origin, SigningKey::from_bytes(&[5; 32])).unwrap();
        let checkpoint = Checkpoint { origin, tree_size, root_hash, extensions };
        let note = log.sign_checkpoint(&checkpoint).unwrap();
        prop_assert_eq!(open_checkpoint(&note, &log.verifier()), Ok(checkpoint));
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (_, verifier) = signed_note();
        let _ = open_checkpoint(&String::from_utf8_lossy(&bytes), &verifier);
        let _ = Checkpoint::parse_body(&String::from_utf8_lossy(&bytes));
        let _ = String::from_utf8_lossy(&bytes).parse::<NoteVerifier>();
    }

    #[test]
    fn edited_notes_never_open_to_another_checkpoint(
        start in 0usize..400,
        removed in 0usize..8,
        inserted in "(\n|—| |=|[A-Za-z0-9+/]|example.com/uptime-ledger|\u{a0}){0,6}",
    ) {
        let (note, verifier) = signed_note();
        let start = start.min(note.len());
        let end = (start + removed).min(note.len());
        if note.is_char_boundary(start) && note.is_char_boundary(end) {
            let edited = format!("{}{inserted}{}", &note[..start], &note[end..]);
            if let Ok(opened) = open_checkpoint(&edited, &verifier) {
                prop_assert_eq!(opened, checkpoint(42));
            }
        }
    }
}
