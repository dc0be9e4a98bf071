//! Untrusted text through the probe agent's config parser (TOML, then validation), as
//! `uptime-ledger probe --config` reads it.
//!
//! Checked: nothing panics; an error names the file, and a line that exists in it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use uptime_ledger::probe::config::{parse, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, "fuzz.toml", Path::new("/fuzz")) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(ConfigError::Invalid { file, line, .. }) => {
            assert_eq!(file, "fuzz.toml");
            if let Some(line) = line {
                assert!(line >= 1 && line <= text.split('\n').count(), "line {line}");
            }
        }
        Err(other) => panic!("parse reads no file, yet: {other}"),
    }
});
