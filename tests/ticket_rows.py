"""Support-ticket rows for the data-parallel tests: 64 prompts of varied length, two teams."""

TICKETS = [
    {
        "prompt": f"Ticket {i}: "
        + ("refund my order " if i % 2 else "it crashes ") * (1 + i % 5)
        + "\nTeam:",
        "target": " billing" if i % 2 else " technical",
    }
    for i in range(64)
]
