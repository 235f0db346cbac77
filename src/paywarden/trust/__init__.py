"""The trust domain: who is speaking, and can we prove it later?

Pure code, like every domain: keys as JWKs (:mod:`paywarden.trust.keys`) and RFC 9421 HTTP
Message Signatures over agent requests (:mod:`paywarden.trust.signatures`). Nothing here reads
the clock, draws randomness or touches the network; ``now`` and any random bytes are passed in.
"""
