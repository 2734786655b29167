"""The customer archive (客户档案): customers with structured 14-digit ids, contacts and agreements."""
