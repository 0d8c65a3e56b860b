/* s3: impl part (under construction) */
