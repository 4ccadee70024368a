{
  "algorithm": "ed25519",
  "key_id": "c3eb980c456c0e09",
  "signature": "9mTex97IeYjJStmrcGDMy+55WP/20ckOKSzPjtg8F0XNbybY3KAdMNlRfBDICsgtoIy7dPm+SVTQ21V4qjvrDg=="
}
