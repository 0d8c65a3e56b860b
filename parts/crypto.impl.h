/* crypto: impl part (under construction) */
