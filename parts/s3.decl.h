/* s3: decl part (under construction) */
