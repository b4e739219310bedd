"""The traffic stage: what the pods' clients send, and what came back."""
