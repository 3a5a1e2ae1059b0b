"""Landing and checkout pages, Stripe Connect, webhooks, fulfilment (issue 4)."""
