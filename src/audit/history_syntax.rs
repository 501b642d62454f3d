// TEMPORARY STUB (helper-2 replaces this file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Bash,
    Zsh,
    Fish,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub line: u32,
    pub command: Vec<u8>,
}
pub fn entries(text: &[u8], _kind: HistoryKind) -> Vec<HistoryEntry> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| HistoryEntry {
            line: i as u32 + 1,
            command: l.to_vec(),
        })
        .collect()
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateKind {
    Assignment { exported: bool },
    Header { header: String },
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: Option<String>,
    pub value: Vec<u8>,
    pub kind: CandidateKind,
}
pub fn command_candidates(_command: &[u8]) -> Vec<Candidate> {
    Vec::new()
}
