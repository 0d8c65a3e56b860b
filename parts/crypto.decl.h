/* crypto: decl part (under construction) */
