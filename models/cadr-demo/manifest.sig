{
  "algorithm": "ed25519",
  "key_id": "c3eb980c456c0e09",
  "signature": "Pm7298RXY+F7am4r2p9SApC1DccHY8zyd6gBugeVqxwktZtNzxPftykXoYPY4Ck46HKriSqxcFFvv2oj6nqrCw=="
}
