/* sigv4: impl part (under construction) */
