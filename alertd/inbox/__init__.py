"""The durable inbox (R1.4): every accepted mail is stored before anything else happens."""
