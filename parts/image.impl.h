/* image: impl part (under construction) */
