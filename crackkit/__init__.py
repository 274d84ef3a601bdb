"""crackkit."""
