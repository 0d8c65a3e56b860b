/* events: impl part (under construction) */
