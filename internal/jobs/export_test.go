package jobs

// FoldEvery is foldEvery, for the tests that check the pacing of bucket writes.
const FoldEvery = foldEvery
