{
  "algorithm": "ed25519",
  "key_id": "c3eb980c456c0e09",
  "signature": "dtHqVva0qWl9X/7TnZZazHOGJuJ3LqhMHPTHbICDL9BYNPZU1gUx1ErbG/ZBlHQzbbRoYal/atp7bRb4BPO/BQ=="
}
