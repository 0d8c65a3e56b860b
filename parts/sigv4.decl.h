/* sigv4: decl part (under construction) */
