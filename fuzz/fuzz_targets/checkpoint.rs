//! Untrusted checkpoint text through the signed-note and checkpoint parsers: what
//! `audit`, `log verify` and every auditor run on a note fetched from a server, and on a
//! verifier key string typed by a person.
//!
//! Checked: nothing panics; a note that opens carries the verifier's origin; a checkpoint
//! body that parses prints back to the same checkpoint; a verifier key string that parses
//! prints back to itself; a parsed body with our origin, once signed, opens to the same
//! checkpoint (and the note with a flipped signature byte does not).
#![no_main]

use std::str::FromStr;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

use uptime_ledger::checkpoint::{open_checkpoint, Checkpoint, NoteSigner, NoteVerifier};

const ORIGIN: &str = "fuzz.example/log";

fn signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[7; 32])).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let verifier = signer().verifier();

    if let Ok(checkpoint) = open_checkpoint(&text, &verifier) {
        assert_eq!(checkpoint.origin, ORIGIN);
    }

    if let Ok(checkpoint) = Checkpoint::parse_body(&text) {
        let reparsed = Checkpoint::parse_body(&checkpoint.body()).expect("a parsed body reparses");
        assert_eq!(reparsed, checkpoint);
        let ours = Checkpoint {
            origin: ORIGIN.into(),
            ..checkpoint
        };
        if let Ok(note) = signer().sign_checkpoint(&ours) {
            assert_eq!(open_checkpoint(&note, &verifier).as_ref(), Ok(&ours));
            // Change one character inside the signature: must not open.
            let mut tampered = note.into_bytes();
            let last = tampered.len() - 10;
            tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(open_checkpoint(&tampered, &verifier).is_err());
        }
    }

    if let Ok(parsed) = NoteVerifier::from_str(&text) {
        assert_eq!(parsed.to_string(), text);
    }
});
