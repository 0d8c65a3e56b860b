/* image: decl part (under construction) */
