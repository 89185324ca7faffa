"""Where mail comes from: the SMTP listener, IMAP mailboxes, Automate tickets (R1, R5.6)."""
