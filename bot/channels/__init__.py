"""Channel adapters: each turns its platform's input into neutral events and renders what the flows say."""
