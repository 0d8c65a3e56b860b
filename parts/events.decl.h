/* events: decl part (under construction) */
