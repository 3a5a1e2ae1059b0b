"""The arq worker: one function that runs outbox rows, the handlers it dispatches to, crons."""
