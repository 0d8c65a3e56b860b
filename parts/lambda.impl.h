/* lambda: impl part (under construction) */
