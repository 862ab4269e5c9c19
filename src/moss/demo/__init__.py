"""The seed's hand-off, as two runnable agents: ``python -m moss.demo.agent_a`` then ``agent_b``."""
