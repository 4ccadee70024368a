{
  "algorithm": "ed25519",
  "key_id": "c3eb980c456c0e09",
  "signature": "dRU5ODXAQVq8Uj1KgPFw5HHKI3ti2Bt+2B4wTlNFsykc2BqxAmGlb4OLNnp/GITPI8lbfYlaNJrXWE8yxQ/CBA=="
}
