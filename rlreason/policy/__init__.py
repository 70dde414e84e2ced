"""Policy loading, control tokens, rollout (generation) and episode splitting."""
