//! The spool's invariants under reopening, a full spool, torn and damaged files, and
//! settlement.

use base64::Engine as _;

use super::segment::{list_segments, HEADER_BYTES};
use super::*;

fn config(dir: &Path, max_pending: usize, segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_owned(),
        max_pending,
        segment_bytes,
    }
}

fn observation(seq: u64) -> SpooledObservation {
    SpooledObservation {
        seq,
        body: format!("body of {seq}").into_bytes(),
        signature: [seq as u8; 64],
    }
}

fn append(spool: &mut Spool) -> u64 {
    match spool.append(observation).unwrap() {
        Appended::Spooled { seq } => seq,
        Appended::Full => panic!("the spool is full"),
    }
}

fn pending_seqs(spool: &Spool) -> Vec<u64> {
    spool
        .oldest_pending(usize::MAX)
        .iter()
        .map(|o| o.seq)
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    files.sort();
    files
}

#[test]
fn seqs_start_where_asked_continue_across_reopen_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 500).unwrap();
    assert_eq!((append(&mut spool), append(&mut spool)), (500, 501));
    drop(spool);
    // The first-seq argument only applies to a new spool.
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 9_000).unwrap();
    assert_eq!(pending_seqs(&spool), vec![500, 501]);
    assert_eq!(spool.oldest_pending(1), vec![observation(500)]);
    assert_eq!(append(&mut spool), 502);
    // Settled all: the next seq still follows on after a reopen.
    spool
        .settle(&[
            (500, Settlement::Delivered),
            (501, Settlement::Delivered),
            (502, Settlement::Delivered),
        ])
        .unwrap();
    drop(spool);
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 9_000).unwrap();
    assert_eq!(spool.pending_count(), 0);
    assert_eq!(append(&mut spool), 503);
}

#[test]
fn a_second_agent_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(config(dir.path(), 10, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    let second = Spool::open(config(dir.path(), 10, DEFAULT_SEGMENT_BYTES), 1);
    assert!(matches!(second, Err(SpoolError::Locked(_))), "{second:?}");
}

#[test]
fn a_full_spool_keeps_the_oldest_and_allocates_no_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 2, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    append(&mut spool);
    append(&mut spool);
    let mut signed = false;
    let full = spool
        .append(|seq| {
            signed = true;
            observation(seq)
        })
        .unwrap();
    assert_eq!(full, Appended::Full);
    assert!(!signed, "nothing is signed for a dropped result");
    assert_eq!(pending_seqs(&spool), vec![1, 2]);
    spool.settle(&[(1, Settlement::Delivered)]).unwrap();
    assert_eq!(
        append(&mut spool),
        3,
        "no seq was used by the dropped result"
    );
}

#[test]
fn a_torn_record_at_the_end_is_cut_off_and_its_seq_allocated_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    for _ in 0..3 {
        append(&mut spool);
    }
    drop(spool);
    let segment = segment_files(dir.path()).pop().unwrap();
    let intact = fs::metadata(&segment).unwrap().len();
    // Every way an append can be torn: a partial header, a partial payload, and a
    // complete-looking record whose bytes did not all reach the disk.
    let full_record = encode_record(&observation(4));
    let mut garbled = full_record.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 0xff;
    for torn in [&full_record[..5], &full_record[..30], &garbled[..]] {
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(torn).unwrap();
        drop(file);
        let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
        assert_eq!(fs::metadata(&segment).unwrap().len(), intact);
        assert_eq!(pending_seqs(&spool), vec![1, 2, 3]);
        assert_eq!(spool.next_seq(), 4);
        drop(spool);
    }
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    assert_eq!(append(&mut spool), 4);
}

#[test]
fn damage_before_the_newest_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: one record each.
    let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
    for _ in 0..3 {
        append(&mut spool);
    }
    drop(spool);
    let segments = segment_files(dir.path());
    assert_eq!(segments.len(), 3);
    let mut bytes = fs::read(&segments[0]).unwrap();
    bytes[HEADER_BYTES + 2] ^= 0xff;
    fs::write(&segments[0], bytes).unwrap();
    let opened = Spool::open(config(dir.path(), 100, 1), 1);
    assert!(
        matches!(opened, Err(SpoolError::Corrupt { .. })),
        "{opened:?}"
    );
}

#[test]
fn a_missing_segment_is_a_gap_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
    for _ in 0..3 {
        append(&mut spool);
    }
    drop(spool);
    fs::remove_file(&segment_files(dir.path())[1]).unwrap();
    let opened = Spool::open(config(dir.path(), 100, 1), 1);
    assert!(
        matches!(opened, Err(SpoolError::Corrupt { .. })),
        "{opened:?}"
    );
}

#[test]
fn settled_segments_are_deleted_but_never_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
    for _ in 0..4 {
        append(&mut spool);
    }
    assert_eq!(segment_files(dir.path()).len(), 4);
    spool
        .settle(&[(1, Settlement::Delivered), (2, Settlement::Delivered)])
        .unwrap();
    assert_eq!(segment_files(dir.path()).len(), 2);
    spool
        .settle(&[(3, Settlement::Delivered), (4, Settlement::Delivered)])
        .unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    drop(spool);
    let mut spool = Spool::open(config(dir.path(), 100, 1), 1).unwrap();
    assert_eq!(spool.pending_count(), 0);
    assert_eq!(append(&mut spool), 5);
}

#[test]
fn rejected_observations_go_to_the_dead_letters_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    for _ in 0..3 {
        append(&mut spool);
    }
    spool
        .settle(&[
            (1, Settlement::Delivered),
            (
                2,
                Settlement::Rejected {
                    reason: Some(RejectReason::TooLate),
                    message: "observed 2 h before it was received".into(),
                },
            ),
        ])
        .unwrap();
    assert_eq!(pending_seqs(&spool), vec![3]);
    let letters = fs::read_to_string(dir.path().join(DEAD_LETTER_FILE)).unwrap();
    let lines: Vec<_> = letters.lines().collect();
    assert_eq!(lines.len(), 1, "{letters}");
    let letter: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(letter["seq"], 2);
    assert_eq!(letter["reason"], "too_late");
    assert_eq!(letter["message"], "observed 2 h before it was received");
    let body = base64::engine::general_purpose::STANDARD
        .decode(letter["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, b"body of 2");
    drop(spool);

    // A crash after the dead letter was synced but before the delivered mark moved:
    // the letter itself says seq 2 (and so 1) is settled; nothing is sent twice.
    fs::write(dir.path().join(DELIVERED_FILE), "0\n").unwrap();
    let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    assert_eq!(pending_seqs(&spool), vec![3]);
}

#[test]
fn a_torn_dead_letter_line_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    append(&mut spool);
    append(&mut spool);
    let rejected = Settlement::Rejected {
        reason: Some(RejectReason::UnknownService),
        message: "no such service".into(),
    };
    spool.settle(&[(1, rejected)]).unwrap();
    drop(spool);
    let path = dir.path().join(DEAD_LETTER_FILE);
    let whole = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{whole}{{\"seq\":2,\"rea")).unwrap();
    let spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), whole);
    assert_eq!(pending_seqs(&spool), vec![2]);
}

#[test]
#[should_panic(expected = "oldest pending")]
fn settling_out_of_order_is_a_bug() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(dir.path(), 100, DEFAULT_SEGMENT_BYTES), 1).unwrap();
    append(&mut spool);
    append(&mut spool);
    let _ = spool.settle(&[(2, Settlement::Delivered)]);
}
